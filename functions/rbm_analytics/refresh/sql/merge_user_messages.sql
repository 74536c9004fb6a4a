-- Upsert changed user messages from a run's staging table into the mirror.
-- User messages are immutable: a document read again (the overlap margin,
-- a retried run) matches its row and changes nothing.
-- @min_date / @max_date: the staged rows' event_date range (partition filter).
MERGE `${dataset}.user_messages` AS t
USING `${dataset}.${staging}` AS s
ON t.message_id = s.message_id AND t.event_date BETWEEN @min_date AND @max_date
WHEN MATCHED AND s.updated_at >= t.updated_at THEN UPDATE SET
  agent_id = s.agent_id,
  user_key = s.user_key,
  event_at = s.event_at,
  event_date = s.event_date,
  kind = s.kind,
  postback_data = s.postback_data,
  mime_type = s.mime_type,
  updated_at = s.updated_at
WHEN NOT MATCHED THEN INSERT
  (message_id, agent_id, user_key, event_at, event_date, kind, postback_data, mime_type,
   updated_at)
VALUES
  (s.message_id, s.agent_id, s.user_key, s.event_at, s.event_date, s.kind, s.postback_data,
   s.mime_type, s.updated_at);
