// Reads a dnsrec parquet export with DuckDB, for TestExportParquetDuckDB:
// prints as JSON the row count, DuckDB's type for ts, and a few columns of
// every row. Run with NODE_PATH pointing at the node_modules that holds
// @duckdb/node-api (.cache/duckdb/node_modules, installed by .ci/run).
//
//   node read.cjs FILE.parquet
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const file = process.argv[2];
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const one = async (sql) => (await conn.runAndReadAll(sql, [file])).getRowObjectsJson();
  const [{ n }] = await one('SELECT count(*)::BIGINT AS n FROM read_parquet($1)');
  const [{ t }] = await one('SELECT typeof(ts) AS t FROM read_parquet($1) LIMIT 1');
  const rows = await one(`SELECT uid, qname, client_pid, client_comm, server_comm, status, answers,
      ts_ns::VARCHAR AS ts_ns, epoch_us(ts)::VARCHAR AS ts_us FROM read_parquet($1) ORDER BY ts, uid`);
  for (const r of rows) {
    r.client_pid = r.client_pid === null ? null : Number(r.client_pid);
  }
  process.stdout.write(JSON.stringify({ count: Number(n), ts_type: t, rows }) + '\n');
  conn.closeSync();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
