-- period_reach(start_date, end_date, scale): one row per (period, agent_id)
-- with anyone reached, and one per period for every agent together (agent_id
-- '*', each user once however many agents reached them):
--   recipients  distinct users sent an agent message on the period's days
--               (agent_messages.user_key by sent_date)
--   responders  distinct users who sent a user message on them
--               (user_messages.user_key by event_date)
-- `scale` = 'day', 'week' or 'month'; a period is labelled `date` by its first
-- day (a day, the Monday of an ISO week, the 1st of a month) and covers only
-- the days inside [start_date, end_date]. A user active on several days of a
-- period counts once: distinct counts do not add up over days.
--
-- It reads the mirror tables (user keys), yet returns only counts: it lives
-- in its own dataset and is authorized on the main one, so a caller needs
-- access to this function alone, never to the mirror. Each mirror table is
-- read with its partition column BETWEEN start_date AND end_date (constants
-- of the calling query): only those date partitions.
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
  sent_to AS (
    SELECT calendar.period, m.agent_id, m.user_key
    FROM `${project}.${dataset}.agent_messages` AS m
    JOIN calendar ON calendar.date = m.sent_date
    WHERE m.sent_date BETWEEN start_date AND end_date
  ),
  heard_from AS (
    SELECT calendar.period, u.agent_id, u.user_key
    FROM `${project}.${dataset}.user_messages` AS u
    JOIN calendar ON calendar.date = u.event_date
    WHERE u.event_date BETWEEN start_date AND end_date
  ),
  recipients AS (
    SELECT period, agent_id, COUNT(DISTINCT user_key) AS recipients
    FROM sent_to
    GROUP BY period, agent_id
    UNION ALL
    SELECT period, '*' AS agent_id, COUNT(DISTINCT user_key) AS recipients
    FROM sent_to
    GROUP BY period
  ),
  responders AS (
    SELECT period, agent_id, COUNT(DISTINCT user_key) AS responders
    FROM heard_from
    GROUP BY period, agent_id
    UNION ALL
    SELECT period, '*' AS agent_id, COUNT(DISTINCT user_key) AS responders
    FROM heard_from
    GROUP BY period
  )
  SELECT
    period AS date,
    agent_id,
    COALESCE(recipients.recipients, 0) AS recipients,
    COALESCE(responders.responders, 0) AS responders
  FROM recipients
  FULL JOIN responders USING (period, agent_id)
)
