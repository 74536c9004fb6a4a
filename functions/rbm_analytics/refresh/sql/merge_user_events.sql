-- Add new user events (IS_TYPING, SUBSCRIBE, server events, ...) to the
-- mirror. Key: (agent_id, event_id, user_key), RBM's documented duplicate key.
-- An event is written once and never changes: insert-only, like user messages.
-- @dates: every event_date among the staged rows (exact partition pruning).
MERGE `${dataset}.user_events` AS t
USING `${dataset}.${staging}` AS s
ON t.agent_id = s.agent_id AND t.event_id = s.event_id AND t.user_key = s.user_key
  AND t.event_date IN UNNEST(@dates)
WHEN NOT MATCHED THEN INSERT
  (event_id, agent_id, user_key, event_type, event_at, event_date, updated_at)
VALUES
  (s.event_id, s.agent_id, s.user_key, s.event_type, s.event_at, s.event_date, s.updated_at);
