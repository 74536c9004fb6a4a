-- Upsert changed agent messages from a run's staging table into the mirror.
--
-- @min_date: the earliest sent_date among the staged rows. The mirror row of
-- a message is never in an older partition than its staged row (ingest keeps
-- the earliest sendTime, so a message's sent_date can only move earlier),
-- which makes `t.sent_date >= @min_date` a safe partition filter: the MERGE
-- scans the partitions the changes touch, not the whole history.
--
-- A row is only replaced by a version at least as new (updated_at), so an
-- older, slower run can never overwrite a newer one's data.
MERGE `${dataset}.agent_messages` AS t
USING `${dataset}.${staging}` AS s
ON t.message_id = s.message_id AND t.sent_date >= @min_date
WHEN MATCHED AND s.updated_at >= t.updated_at THEN UPDATE SET
  agent_id = s.agent_id,
  user_key = s.user_key,
  sent_at = s.sent_at,
  sent_date = s.sent_date,
  content_type = s.content_type,
  traffic_type = s.traffic_type,
  delivered_at = s.delivered_at,
  read_at = s.read_at,
  updated_at = s.updated_at
WHEN NOT MATCHED THEN INSERT
  (message_id, agent_id, user_key, sent_at, sent_date, content_type, traffic_type,
   delivered_at, read_at, updated_at)
VALUES
  (s.message_id, s.agent_id, s.user_key, s.sent_at, s.sent_date, s.content_type,
   s.traffic_type, s.delivered_at, s.read_at, s.updated_at);
