-- Upsert changed user events (IS_TYPING, SUBSCRIBE, server events, ...) into
-- the mirror. Key: (agent_id, event_id, user_key), RBM's documented duplicate key.
-- @min_date / @max_date: the staged rows' event_date range (partition filter).
MERGE `${dataset}.user_events` AS t
USING `${dataset}.${staging}` AS s
ON t.agent_id = s.agent_id AND t.event_id = s.event_id AND t.user_key = s.user_key
  AND t.event_date BETWEEN @min_date AND @max_date
WHEN MATCHED AND s.updated_at >= t.updated_at THEN UPDATE SET
  event_type = s.event_type,
  event_at = s.event_at,
  event_date = s.event_date,
  updated_at = s.updated_at
WHEN NOT MATCHED THEN INSERT
  (event_id, agent_id, user_key, event_type, event_at, event_date, updated_at)
VALUES
  (s.event_id, s.agent_id, s.user_key, s.event_type, s.event_at, s.event_date, s.updated_at);
