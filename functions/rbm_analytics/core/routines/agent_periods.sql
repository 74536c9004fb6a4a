-- agent_periods(start_date, end_date, scale): one row per (period, agent_id),
-- the export's rows for the same range and scale (`scale` = 'day', 'week' or
-- 'month'). A period is labelled `date` by its first day (a day, the Monday of
-- an ISO week, the 1st of a month) and covers only the days inside
-- [start_date, end_date]. Every period x every agent with a daily_metrics row
-- in the range, zero-filled; counts summed; averages from the summed integer
-- milliseconds over the summed sample counts (exact, whatever the order rows
-- are summed in); percentiles nearest rank over the period's own samples
-- (PERCENTILE_DISC: the first sample whose cumulative distribution reaches p,
-- i.e. the ceil(p * n)-th smallest); rates from the summed counts. At day scale
-- an agent's averages and percentiles are the refresh's own values.
-- Each base table is read with `date BETWEEN start_date AND end_date`, and a
-- table function's arguments are constants of the calling query, so BigQuery
-- reads only those date partitions.
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
  days AS (
    SELECT calendar.period, m.*
    FROM `${project}.${dataset}.daily_metrics` AS m
    JOIN calendar ON calendar.date = m.date
    WHERE m.date BETWEEN start_date AND end_date
  ),
  totals AS (
    SELECT
      period,
      agent_id,
      SUM(sent) AS sent,
      SUM(delivered) AS delivered,
      SUM(read) AS read,
      SUM(typing_events) AS typing_events,
      SUM(user_messages) AS user_messages,
      SUM(user_text) AS user_text,
      SUM(user_files) AS user_files,
      SUM(user_locations) AS user_locations,
      SUM(suggestion_replies) AS suggestion_replies,
      SUM(suggestion_actions) AS suggestion_actions,
      SUM(reads_with_reply) AS reads_with_reply,
      MAX(read_to_reply_avg_s) AS read_to_reply_day_avg_s,
      SAFE_DIVIDE(
        SUM(read_to_reply_sum_ms),
        SUM(IF(read_to_reply_sum_ms IS NULL, 0, reads_with_reply))
      ) / 1000 AS read_to_reply_avg_s,
      MAX(read_to_reply_p50_s) AS read_to_reply_p50_s,
      SUM(agent_responses) AS agent_responses,
      MAX(agent_response_avg_s) AS agent_response_day_avg_s,
      SAFE_DIVIDE(
        SUM(agent_response_sum_ms),
        SUM(IF(agent_response_sum_ms IS NULL, 0, agent_responses))
      ) / 1000 AS agent_response_avg_s,
      MAX(agent_response_p50_s) AS agent_response_p50_s,
      MAX(agent_response_p90_s) AS agent_response_p90_s,
      MAX(refreshed_at) AS refreshed_at,
      SUM(read_to_reply_sum_ms) AS read_to_reply_sum_ms,
      SUM(agent_response_sum_ms) AS agent_response_sum_ms,
      SUM(recipients) AS recipients,
      SUM(responders) AS responders
    FROM days
    GROUP BY period, agent_id
  ),
  percentiles AS (
    SELECT
      period,
      agent_id,
      MAX(IF(metric = 'read_to_reply', p50, NULL)) / 1000 AS read_to_reply_p50_s,
      MAX(IF(metric = 'agent_response', p50, NULL)) / 1000 AS agent_response_p50_s,
      MAX(IF(metric = 'agent_response', p90, NULL)) / 1000 AS agent_response_p90_s
    FROM (
      SELECT
        calendar.period,
        s.agent_id,
        s.metric,
        PERCENTILE_DISC(s.duration_ms, 0.5) OVER period_samples AS p50,
        PERCENTILE_DISC(s.duration_ms, 0.9) OVER period_samples AS p90
      FROM `${project}.${dataset}.response_samples` AS s
      JOIN calendar ON calendar.date = s.date
      WHERE s.date BETWEEN start_date AND end_date AND scale != 'day'
      WINDOW period_samples AS (PARTITION BY calendar.period, s.agent_id, s.metric)
    )
    GROUP BY period, agent_id
  ),
  reach AS (
    -- Distinct users over the period's own days (they do not add up over
    -- days), from the authorized function over the mirror; a day's are the
    -- refresh's own values.
    SELECT date AS period, agent_id, recipients, responders
    FROM `${project}.${reach_dataset}.period_reach`(start_date, end_date, scale)
    WHERE scale != 'day'
  ),
  periods AS (
    SELECT DISTINCT period FROM calendar
  ),
  agents AS (
    SELECT DISTINCT agent_id FROM days
  )
  SELECT
    periods.period AS date,
    agents.agent_id,
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
    IF(scale = 'day', t.read_to_reply_day_avg_s, t.read_to_reply_avg_s) AS read_to_reply_avg_s,
    IF(scale = 'day', t.read_to_reply_p50_s, p.read_to_reply_p50_s) AS read_to_reply_p50_s,
    COALESCE(t.agent_responses, 0) AS agent_responses,
    IF(scale = 'day', t.agent_response_day_avg_s, t.agent_response_avg_s) AS agent_response_avg_s,
    IF(scale = 'day', t.agent_response_p50_s, p.agent_response_p50_s) AS agent_response_p50_s,
    IF(scale = 'day', t.agent_response_p90_s, p.agent_response_p90_s) AS agent_response_p90_s,
    t.refreshed_at,
    COALESCE(t.read_to_reply_sum_ms, 0) AS read_to_reply_sum_ms,
    COALESCE(t.agent_response_sum_ms, 0) AS agent_response_sum_ms,
    COALESCE(IF(scale = 'day', t.recipients, r.recipients), 0) AS recipients,
    COALESCE(IF(scale = 'day', t.responders, r.responders), 0) AS responders,
    ROUND(SAFE_DIVIDE(t.delivered, t.sent), 4) AS delivery_rate,
    ROUND(SAFE_DIVIDE(t.read, t.sent), 4) AS read_rate
  FROM periods
  CROSS JOIN agents
  LEFT JOIN totals AS t ON t.period = periods.period AND t.agent_id = agents.agent_id
  LEFT JOIN percentiles AS p ON p.period = periods.period AND p.agent_id = agents.agent_id
  LEFT JOIN reach AS r ON r.period = periods.period AND r.agent_id = agents.agent_id
)
