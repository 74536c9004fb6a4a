-- Upsert changed agent messages from a run's staging table into the mirror.
--
-- @dates: every sent_date among the staged rows. `t.sent_date IN UNNEST(@dates)`
-- is a constant predicate on the partitioning column, so BigQuery reads and
-- rewrites exactly those partitions: a late READ for a 60-day-old message
-- touches that message's day (and the days of the other staged rows), not
-- the two months in between. A message keeps its sent date: its sendTime is
-- the one the RBM API returned when it was sent.
--
-- A row is rewritten only when a value changed (a duplicate receipt or a
-- re-read document changes nothing, and BigQuery bills DML by the partitions
-- it rewrites), and only by a version at least as new (updated_at), so an
-- older, slower run never overwrites a newer one's data. IS DISTINCT FROM
-- compares NULLs as values (a receipt that arrives turns NULL into a time).
MERGE `${dataset}.agent_messages` AS t
USING `${dataset}.${staging}` AS s
ON t.message_id = s.message_id AND t.sent_date IN UNNEST(@dates)
WHEN MATCHED AND s.updated_at >= t.updated_at AND (
  t.agent_id IS DISTINCT FROM s.agent_id
  OR t.user_key IS DISTINCT FROM s.user_key
  OR t.sent_at IS DISTINCT FROM s.sent_at
  OR t.content_type IS DISTINCT FROM s.content_type
  OR t.traffic_type IS DISTINCT FROM s.traffic_type
  OR t.delivered_at IS DISTINCT FROM s.delivered_at
  OR t.read_at IS DISTINCT FROM s.read_at
) THEN UPDATE SET
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
