-- Recompute daily_metrics, daily_postbacks and response_samples for the dates
-- @start_date … @end_date (inclusive), replacing exactly those dates in one
-- transaction: readers see the old rows or the new ones, never a mix, and a
-- failure anywhere rolls everything back.
--
-- Parameters
--   @start_date, @end_date  DATE   the dates to recompute
--   @window_days            INT64  W = BACKFILL_DAYS (8)
--   @lookback_days          INT64  how far back a "previous message" may be (30)
--   @refreshed_at           TIMESTAMP  the run's start
--
-- Durations are whole milliseconds, TIMESTAMP_DIFF(later, earlier, MILLISECOND)
-- (truncated), summed as INT64: integer sums do not depend on the order rows
-- are added in, so a rerun over the same data writes bit-identical rows.
-- Averages divide those sums once; seconds = milliseconds / 1000.
--
-- THE 8-DAY RULE: anything attributed to date D counts only if it happened
-- before TIMESTAMP_ADD(TIMESTAMP(D), INTERVAL @window_days DAY), i.e.
-- D + W days 00:00:00 UTC (timeutil.cutoff is the Python twin).
--
-- Scans stay inside partition ranges, each table once per statement:
--   read_to_reply   agent_messages sent_date  in [start, end]
--                   user_messages  event_date in [start, end + W - 1]
--   agent_response  agent_messages sent_date  in [start - lookback, end + W - 1]
--                   user_messages  event_date in [start - lookback, end]
--   daily_metrics   agent_messages, user_messages, user_events, response_samples
--                   in [start, end]
-- (the look-back finds a user message's previous message; the days after
-- `end` hold replies and answers that still count before the cutoff).

BEGIN TRANSACTION;

DELETE FROM `${dataset}.response_samples` WHERE date BETWEEN @start_date AND @end_date;
DELETE FROM `${dataset}.daily_postbacks` WHERE date BETWEEN @start_date AND @end_date;
DELETE FROM `${dataset}.daily_metrics` WHERE date BETWEEN @start_date AND @end_date;

-- read_to_reply samples, attributed to the READ message's sent date D:
-- for each agent message sent on D whose READ is before the cutoff, the first
-- user message in the same conversation (agent_id, user_key) at or after the
-- READ and before the cutoff; seconds from the READ to it.
INSERT INTO `${dataset}.response_samples` (date, agent_id, metric, duration_ms, seconds)
WITH counted_reads AS (
  SELECT
    message_id, agent_id, user_key, sent_date, read_at,
    TIMESTAMP_ADD(TIMESTAMP(sent_date), INTERVAL @window_days DAY) AS cutoff_at
  FROM `${dataset}.agent_messages`
  WHERE sent_date BETWEEN @start_date AND @end_date
    AND read_at < TIMESTAMP_ADD(TIMESTAMP(sent_date), INTERVAL @window_days DAY)
),
first_replies AS (
  SELECT r.message_id, r.agent_id, r.sent_date, r.read_at, MIN(u.event_at) AS reply_at
  FROM counted_reads AS r
  JOIN `${dataset}.user_messages` AS u
    ON u.agent_id = r.agent_id
    AND u.user_key = r.user_key
    AND u.event_at >= r.read_at
    AND u.event_at < r.cutoff_at
  -- A reply follows its READ, which follows the message's send (all RBM's
  -- clock): nothing before @start_date can be one.
  WHERE u.event_date BETWEEN @start_date
    AND DATE_SUB(DATE_ADD(@end_date, INTERVAL @window_days DAY), INTERVAL 1 DAY)
  GROUP BY r.message_id, r.agent_id, r.sent_date, r.read_at
)
SELECT
  sent_date AS date,
  agent_id,
  'read_to_reply' AS metric,
  TIMESTAMP_DIFF(reply_at, read_at, MILLISECOND) AS duration_ms,
  TIMESTAMP_DIFF(reply_at, read_at, MILLISECOND) / 1000 AS seconds
FROM first_replies;

-- agent_response samples, attributed to the user message's event date D.
-- Each conversation's messages (agent and user) in one timeline, ordered by
-- time; at equal times an agent message sorts BEFORE a user message (so it is
-- the user message's previous message, never its answer), then by message_id.
-- A user message opens a wait when its previous message is not a user
-- message sent at most @lookback_days before it (no previous message in that
-- window: it opens a wait). The wait is answered by the conversation's first
-- agent message after it, if that is sent before the cutoff of D.
INSERT INTO `${dataset}.response_samples` (date, agent_id, metric, duration_ms, seconds)
WITH timeline AS (
  SELECT agent_id, user_key, sent_at AS msg_at, sent_date AS day, 0 AS side, message_id
  FROM `${dataset}.agent_messages`
  WHERE sent_date BETWEEN DATE_SUB(@start_date, INTERVAL @lookback_days DAY)
    AND DATE_SUB(DATE_ADD(@end_date, INTERVAL @window_days DAY), INTERVAL 1 DAY)
  UNION ALL
  SELECT agent_id, user_key, event_at AS msg_at, event_date AS day, 1 AS side, message_id
  FROM `${dataset}.user_messages`
  WHERE event_date BETWEEN DATE_SUB(@start_date, INTERVAL @lookback_days DAY) AND @end_date
),
ordered AS (
  SELECT
    agent_id, day, side, msg_at,
    LAG(side) OVER conversation AS previous_side,
    LAG(msg_at) OVER conversation AS previous_at,
    MIN(IF(side = 0, msg_at, NULL)) OVER (
      PARTITION BY agent_id, user_key ORDER BY msg_at, side, message_id
      ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
    ) AS answer_at
  FROM timeline
  WINDOW conversation AS (PARTITION BY agent_id, user_key ORDER BY msg_at, side, message_id)
)
SELECT
  day AS date,
  agent_id,
  'agent_response' AS metric,
  TIMESTAMP_DIFF(answer_at, msg_at, MILLISECOND) AS duration_ms,
  TIMESTAMP_DIFF(answer_at, msg_at, MILLISECOND) / 1000 AS seconds
FROM ordered
WHERE side = 1
  AND day BETWEEN @start_date AND @end_date
  AND NOT (
    previous_side IS NOT NULL AND previous_side = 1
    AND previous_at >= TIMESTAMP_SUB(msg_at, INTERVAL @lookback_days DAY)
  )
  AND answer_at < TIMESTAMP_ADD(TIMESTAMP(day), INTERVAL @window_days DAY);

-- daily_metrics: one row per (date, agent) with any activity. Each CTE below
-- computes its metrics under their column names; the column lists between the
-- "generated" markers come from metrics/catalog.py (make generate).
INSERT INTO `${dataset}.daily_metrics` (
  -- generated: columns (begin)
  date, agent_id, sent, delivered, read, typing_events, user_messages, user_text, user_files,
  user_locations, suggestion_replies, suggestion_actions, reads_with_reply, read_to_reply_avg_s,
  read_to_reply_p50_s, agent_responses, agent_response_avg_s, agent_response_p50_s,
  agent_response_p90_s, refreshed_at, read_to_reply_sum_ms, agent_response_sum_ms, recipients,
  responders
  -- generated: columns (end)
)
WITH sent_on_day AS (
  -- sent: agent messages with sent date D.
  -- delivered / read: of those, with the earliest DELIVERED / READ receipt
  -- before the cutoff (D + W days, 00:00 UTC).
  -- recipients: distinct users (user_key) those messages went to.
  SELECT
    sent_date AS date,
    agent_id,
    COUNT(*) AS sent,
    COUNTIF(delivered_at < TIMESTAMP_ADD(TIMESTAMP(sent_date), INTERVAL @window_days DAY))
      AS delivered,
    COUNTIF(read_at < TIMESTAMP_ADD(TIMESTAMP(sent_date), INTERVAL @window_days DAY)) AS read,
    COUNT(DISTINCT user_key) AS recipients
  FROM `${dataset}.agent_messages`
  WHERE sent_date BETWEEN @start_date AND @end_date
  GROUP BY date, agent_id
),
received_on_day AS (
  -- user_messages: user messages on D; then the same split by kind.
  -- responders: distinct users (user_key) who sent those messages.
  SELECT
    event_date AS date,
    agent_id,
    COUNT(*) AS user_messages,
    COUNT(DISTINCT user_key) AS responders,
    COUNTIF(kind = 'text') AS user_text,
    COUNTIF(kind = 'file') AS user_files,
    COUNTIF(kind = 'location') AS user_locations,
    COUNTIF(kind = 'suggestion_reply') AS suggestion_replies,
    COUNTIF(kind = 'suggestion_action') AS suggestion_actions
  FROM `${dataset}.user_messages`
  WHERE event_date BETWEEN @start_date AND @end_date
  GROUP BY date, agent_id
),
typing_on_day AS (
  -- typing_events: IS_TYPING events on D.
  SELECT event_date AS date, agent_id, COUNT(*) AS typing_events
  FROM `${dataset}.user_events`
  WHERE event_date BETWEEN @start_date AND @end_date AND event_type = 'IS_TYPING'
  GROUP BY date, agent_id
),
durations AS (
  -- reads_with_reply, agent_responses and their durations, from the samples
  -- above, in one pass over response_samples.
  -- *_sum_ms: the samples' integer sum of whole milliseconds; *_avg_s: that
  -- sum / the number of samples, in seconds.
  -- Percentiles are nearest rank: the ceil(p * n / 100)-th smallest of the n
  -- samples. PERCENTILE_DISC(x, p / 100) returns the first sorted value whose
  -- cumulative distribution is >= p / 100, which is exactly that sample.
  SELECT
    date,
    agent_id,
    reads_with_reply,
    read_to_reply_sum_ms,
    read_to_reply_sum_ms / NULLIF(reads_with_reply, 0) / 1000 AS read_to_reply_avg_s,
    read_to_reply_p50_ms / 1000 AS read_to_reply_p50_s,
    agent_responses,
    agent_response_sum_ms,
    agent_response_sum_ms / NULLIF(agent_responses, 0) / 1000 AS agent_response_avg_s,
    agent_response_p50_ms / 1000 AS agent_response_p50_s,
    agent_response_p90_ms / 1000 AS agent_response_p90_s
  FROM (
    SELECT
      date,
      agent_id,
      COUNTIF(metric = 'read_to_reply') AS reads_with_reply,
      SUM(IF(metric = 'read_to_reply', duration_ms, NULL)) AS read_to_reply_sum_ms,
      MAX(IF(metric = 'read_to_reply', p50_ms, NULL)) AS read_to_reply_p50_ms,
      COUNTIF(metric = 'agent_response') AS agent_responses,
      SUM(IF(metric = 'agent_response', duration_ms, NULL)) AS agent_response_sum_ms,
      MAX(IF(metric = 'agent_response', p50_ms, NULL)) AS agent_response_p50_ms,
      MAX(IF(metric = 'agent_response', p90_ms, NULL)) AS agent_response_p90_ms
    FROM (
      SELECT
        date, agent_id, metric, duration_ms,
        PERCENTILE_DISC(duration_ms, 0.5) OVER same_series AS p50_ms,
        PERCENTILE_DISC(duration_ms, 0.9) OVER same_series AS p90_ms
      FROM `${dataset}.response_samples`
      WHERE date BETWEEN @start_date AND @end_date
      WINDOW same_series AS (PARTITION BY date, agent_id, metric)
    )
    GROUP BY date, agent_id
  )
)
-- A (date, agent) row exists when the agent sent a message, received a user
-- message or saw an IS_TYPING event that day: never an all-zero row. Every
-- sample belongs to a sent or received message of its day, so durations only
-- add columns. Counts and sums are 0, never NULL, when nothing happened.
SELECT
  -- generated: values (begin)
  date,
  agent_id,
  COALESCE(sent, 0) AS sent,
  COALESCE(delivered, 0) AS delivered,
  COALESCE(read, 0) AS read,
  COALESCE(typing_events, 0) AS typing_events,
  COALESCE(user_messages, 0) AS user_messages,
  COALESCE(user_text, 0) AS user_text,
  COALESCE(user_files, 0) AS user_files,
  COALESCE(user_locations, 0) AS user_locations,
  COALESCE(suggestion_replies, 0) AS suggestion_replies,
  COALESCE(suggestion_actions, 0) AS suggestion_actions,
  COALESCE(reads_with_reply, 0) AS reads_with_reply,
  read_to_reply_avg_s,
  read_to_reply_p50_s,
  COALESCE(agent_responses, 0) AS agent_responses,
  agent_response_avg_s,
  agent_response_p50_s,
  agent_response_p90_s,
  @refreshed_at AS refreshed_at,
  COALESCE(read_to_reply_sum_ms, 0) AS read_to_reply_sum_ms,
  COALESCE(agent_response_sum_ms, 0) AS agent_response_sum_ms,
  COALESCE(recipients, 0) AS recipients,
  COALESCE(responders, 0) AS responders
  -- generated: values (end)
FROM sent_on_day
FULL JOIN received_on_day USING (date, agent_id)
FULL JOIN typing_on_day USING (date, agent_id)
LEFT JOIN durations USING (date, agent_id);

-- daily_postbacks: suggestion taps on D by postbackData and kind.
INSERT INTO `${dataset}.daily_postbacks` (date, agent_id, postback_data, kind, count)
SELECT event_date, agent_id, postback_data, kind, COUNT(*)
FROM `${dataset}.user_messages`
WHERE event_date BETWEEN @start_date AND @end_date
  AND kind IN ('suggestion_reply', 'suggestion_action')
GROUP BY event_date, agent_id, postback_data, kind;

COMMIT TRANSACTION;

-- The script's result: rows now stored for the dates.
SELECT
  (SELECT COUNT(*) FROM `${dataset}.daily_metrics`
   WHERE date BETWEEN @start_date AND @end_date) AS daily_metrics,
  (SELECT COUNT(*) FROM `${dataset}.daily_postbacks`
   WHERE date BETWEEN @start_date AND @end_date) AS daily_postbacks,
  (SELECT COUNT(*) FROM `${dataset}.response_samples`
   WHERE date BETWEEN @start_date AND @end_date) AS response_samples;
