-- A refresh run's row: "running" as it starts (no finished_at yet), then its
-- outcome when it ends; the latest row of a run_id wins.
-- Query parameters are never NULL (BigQuery does not allow it): a value the
-- run does not have arrives as a typed placeholder with its @has_* flag
-- false, and the row gets a SQL NULL; an empty @error means no error.
INSERT INTO `${dataset}.refresh_runs`
  (run_id, started_at, finished_at, first_date, last_date, documents_read, rows_written,
   status, error)
VALUES
  (@run_id, @started_at,
   IF(@has_finished_at, @finished_at, NULL),
   IF(@has_first_date, @first_date, NULL),
   IF(@has_last_date, @last_date, NULL),
   IF(@has_documents_read, @documents_read, NULL),
   IF(@has_rows_written, @rows_written, NULL),
   @status, NULLIF(@error, ''));
