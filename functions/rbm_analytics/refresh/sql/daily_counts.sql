-- The delivery counts of the dates a run just recomputed, one row per
-- (date, agent): what the refresh logs as "daily metrics" lines, which
-- log-based metrics turn into per-agent delivery and read rates.
-- Reads only the partitions @start_date … @end_date, three count columns.
SELECT date, agent_id, sent, delivered, read
FROM `${dataset}.daily_metrics`
WHERE date BETWEEN @start_date AND @end_date
ORDER BY date, agent_id
