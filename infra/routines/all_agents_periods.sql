-- all_agents_periods(start_date, end_date, scale): one row per period, every
-- agent together (agent_id '*'): the export's total=1 rows for the same range
-- and scale (`scale` = 'day', 'week' or 'month'; a period is labelled `date`
-- by its first day and covers only the days inside [start_date, end_date]).
-- Every period has a row, zero-filled. Counts summed over every agent;
-- averages from the summed integer milliseconds over the summed sample counts;
-- percentiles nearest rank over all agents' samples of the period
-- (PERCENTILE_DISC, exact); rates from the summed counts; recipients and
-- responders count each user once over the period and every agent.
-- Each base table is read with `date BETWEEN start_date AND end_date` (the
-- arguments are constants of the calling query): only those date partitions.
-- The body is one parenthesized query (the function's result).
(
  WITH calendar AS (
    SELECT
      d AS date,
      CASE scale
        WHEN 'day' THEN d
        WHEN 'week' THEN DATE_TRUNC(d, ISOWEEK)
        WHEN 'month' THEN DATE_TRUNC(d, MONTH)
        ELSE ERROR('scale must be day, week or month')
      END AS period
    FROM UNNEST(GENERATE_DATE_ARRAY(start_date, end_date)) AS d
  ),
  totals AS (
    SELECT
      calendar.period,
      SUM(m.sent) AS sent,
      SUM(m.delivered) AS delivered,
      SUM(m.read) AS read,
      SUM(m.typing_events) AS typing_events,
      SUM(m.user_messages) AS user_messages,
      SUM(m.user_text) AS user_text,
      SUM(m.user_files) AS user_files,
      SUM(m.user_locations) AS user_locations,
      SUM(m.suggestion_replies) AS suggestion_replies,
      SUM(m.suggestion_actions) AS suggestion_actions,
      SUM(m.reads_with_reply) AS reads_with_reply,
      SAFE_DIVIDE(
        SUM(m.read_to_reply_sum_ms),
        SUM(IF(m.read_to_reply_sum_ms IS NULL, 0, m.reads_with_reply))
      ) / 1000 AS read_to_reply_avg_s,
      SUM(m.agent_responses) AS agent_responses,
      SAFE_DIVIDE(
        SUM(m.agent_response_sum_ms),
        SUM(IF(m.agent_response_sum_ms IS NULL, 0, m.agent_responses))
      ) / 1000 AS agent_response_avg_s,
      MAX(m.refreshed_at) AS refreshed_at,
      SUM(m.read_to_reply_sum_ms) AS read_to_reply_sum_ms,
      SUM(m.agent_response_sum_ms) AS agent_response_sum_ms
    FROM `${project}.${dataset}.daily_metrics` AS m
    JOIN calendar ON calendar.date = m.date
    WHERE m.date BETWEEN start_date AND end_date
    GROUP BY calendar.period
  ),
  percentiles AS (
    SELECT
      period,
      MAX(IF(metric = 'read_to_reply', p50, NULL)) / 1000 AS read_to_reply_p50_s,
      MAX(IF(metric = 'agent_response', p50, NULL)) / 1000 AS agent_response_p50_s,
      MAX(IF(metric = 'agent_response', p90, NULL)) / 1000 AS agent_response_p90_s
    FROM (
      SELECT
        calendar.period,
        s.metric,
        PERCENTILE_DISC(s.duration_ms, 0.5) OVER period_samples AS p50,
        PERCENTILE_DISC(s.duration_ms, 0.9) OVER period_samples AS p90
      FROM `${project}.${dataset}.response_samples` AS s
      JOIN calendar ON calendar.date = s.date
      WHERE s.date BETWEEN start_date AND end_date
      WINDOW period_samples AS (PARTITION BY calendar.period, s.metric)
    )
    GROUP BY period
  ),
  reach AS (
    -- Each user once over the period's days and every agent (period_reach,
    -- the authorized function over the mirror).
    SELECT date AS period, recipients, responders
    FROM `${project}.${reach_dataset}.period_reach`(start_date, end_date, scale)
    WHERE agent_id = '*'
  ),
  periods AS (
    SELECT DISTINCT period FROM calendar
  )
  SELECT
    periods.period AS date,
    '*' AS agent_id,
    COALESCE(t.sent, 0) AS sent,
    COALESCE(t.delivered, 0) AS delivered,
    COALESCE(t.read, 0) AS read,
    COALESCE(t.typing_events, 0) AS typing_events,
    COALESCE(t.user_messages, 0) AS user_messages,
    COALESCE(t.user_text, 0) AS user_text,
    COALESCE(t.user_files, 0) AS user_files,
    COALESCE(t.user_locations, 0) AS user_locations,
    COALESCE(t.suggestion_replies, 0) AS suggestion_replies,
    COALESCE(t.suggestion_actions, 0) AS suggestion_actions,
    COALESCE(t.reads_with_reply, 0) AS reads_with_reply,
    t.read_to_reply_avg_s,
    p.read_to_reply_p50_s,
    COALESCE(t.agent_responses, 0) AS agent_responses,
    t.agent_response_avg_s,
    p.agent_response_p50_s,
    p.agent_response_p90_s,
    t.refreshed_at,
    COALESCE(t.read_to_reply_sum_ms, 0) AS read_to_reply_sum_ms,
    COALESCE(t.agent_response_sum_ms, 0) AS agent_response_sum_ms,
    COALESCE(r.recipients, 0) AS recipients,
    COALESCE(r.responders, 0) AS responders,
    ROUND(SAFE_DIVIDE(t.delivered, t.sent), 4) AS delivery_rate,
    ROUND(SAFE_DIVIDE(t.read, t.sent), 4) AS read_rate
  FROM periods
  LEFT JOIN totals AS t ON t.period = periods.period
  LEFT JOIN percentiles AS p ON p.period = periods.period
  LEFT JOIN reach AS r ON r.period = periods.period
)
