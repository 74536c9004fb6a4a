-- all_agents_daily: one row per date, every agent together (the export's
-- total=1 row, agent_id '*'): counts summed, rates from the sums, averages
-- from the integer millisecond sums over the sample counts (exact, whatever
-- the order rows are summed in), percentiles nearest rank over all agents'
-- samples of the day (PERCENTILE_DISC: the first sample whose cumulative
-- distribution reaches p, i.e. the ceil(p * n)-th smallest; exact).
-- Both sources are grouped or windowed by `date` alone, so a filter on
-- `date` is pushed into each of them and BigQuery reads only those date
-- partitions of daily_metrics and response_samples.
WITH days AS (
  SELECT
    date,
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
    SAFE_DIVIDE(
      SUM(read_to_reply_sum_ms),
      SUM(IF(read_to_reply_sum_ms IS NULL, 0, reads_with_reply))
    ) / 1000 AS read_to_reply_avg_s,
    SUM(agent_responses) AS agent_responses,
    SAFE_DIVIDE(
      SUM(agent_response_sum_ms),
      SUM(IF(agent_response_sum_ms IS NULL, 0, agent_responses))
    ) / 1000 AS agent_response_avg_s,
    SUM(read_to_reply_sum_ms) AS read_to_reply_sum_ms,
    SUM(agent_response_sum_ms) AS agent_response_sum_ms,
    MAX(refreshed_at) AS refreshed_at
  FROM `${project}.${dataset}.daily_metrics`
  GROUP BY date
),
percentiles AS (
  SELECT
    date,
    MAX(IF(metric = 'read_to_reply', p50, NULL)) / 1000 AS read_to_reply_p50_s,
    MAX(IF(metric = 'agent_response', p50, NULL)) / 1000 AS agent_response_p50_s,
    MAX(IF(metric = 'agent_response', p90, NULL)) / 1000 AS agent_response_p90_s
  FROM (
    SELECT
      date,
      metric,
      PERCENTILE_DISC(duration_ms, 0.5) OVER day_samples AS p50,
      PERCENTILE_DISC(duration_ms, 0.9) OVER day_samples AS p90
    FROM `${project}.${dataset}.response_samples`
    WINDOW day_samples AS (PARTITION BY date, metric)
  )
  GROUP BY date
)
SELECT
  days.date,
  '*' AS agent_id,
  days.sent,
  days.delivered,
  days.read,
  days.typing_events,
  days.user_messages,
  days.user_text,
  days.user_files,
  days.user_locations,
  days.suggestion_replies,
  days.suggestion_actions,
  days.reads_with_reply,
  days.read_to_reply_avg_s,
  percentiles.read_to_reply_p50_s,
  days.agent_responses,
  days.agent_response_avg_s,
  percentiles.agent_response_p50_s,
  percentiles.agent_response_p90_s,
  days.refreshed_at,
  days.read_to_reply_sum_ms,
  days.agent_response_sum_ms,
  ROUND(SAFE_DIVIDE(days.delivered, days.sent), 4) AS delivery_rate,
  ROUND(SAFE_DIVIDE(days.read, days.sent), 4) AS read_rate
FROM days
LEFT JOIN percentiles USING (date)
