-- agent_daily: one row per (date, agent_id), as the refresh wrote it, with
-- the two rates the export computes (4 decimals, NULL when sent = 0).
-- The view only adds columns, so a filter on `date` reaches daily_metrics as
-- it is and BigQuery reads only those date partitions.
SELECT
  *,
  ROUND(SAFE_DIVIDE(delivered, sent), 4) AS delivery_rate,
  ROUND(SAFE_DIVIDE(read, sent), 4) AS read_rate
FROM `${project}.${dataset}.daily_metrics`
