-- Add new user messages from a run's staging table to the mirror.
-- A user message is written once and never changes, so this MERGE only
-- inserts: a document read again (the overlap margin, a retried run) matches
-- its row and nothing is rewritten. An insert-only MERGE is billed for what
-- it reads: the message_id column of the @dates partitions.
-- @dates: every event_date among the staged rows (exact partition pruning).
MERGE `${dataset}.user_messages` AS t
USING `${dataset}.${staging}` AS s
ON t.message_id = s.message_id AND t.event_date IN UNNEST(@dates)
WHEN NOT MATCHED THEN INSERT
  (message_id, agent_id, user_key, event_at, event_date, kind, postback_data, mime_type,
   updated_at)
VALUES
  (s.message_id, s.agent_id, s.user_key, s.event_at, s.event_date, s.kind, s.postback_data,
   s.mime_type, s.updated_at);
