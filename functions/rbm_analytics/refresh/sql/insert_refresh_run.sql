-- One row per refresh run, written when the run ends (succeeded or failed).
INSERT INTO `${dataset}.refresh_runs`
  (run_id, started_at, finished_at, first_date, last_date, documents_read, rows_written,
   status, error)
VALUES
  (@run_id, @started_at, @finished_at, @first_date, @last_date, @documents_read, @rows_written,
   @status, @error);
