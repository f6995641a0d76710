package txshim

import (
	"fmt"
	"testing"
	"time"
)

// TestClockWordDDLBesideDatedPartitions: a DDL statement with a clock word in one of its
// strings — a function body that calls now(), a CHECK on a text column — has the definitions
// it made checked for a clock literal's moment. The check took every definition the
// transaction made, or whose catalog row it touched, that holds the day's date: a partition
// for today made earlier in the transaction (a time-partitioned table's first migration), or
// one made long before whose row the statement touched (a CHECK added to the partitioned
// table, which counts each partition's constraints), was refused as if the statement had
// fixed the moment into its bounds. Only the definitions the statement wrote are checked now.
func TestClockWordDDLBesideDatedPartitions(t *testing.T) {
	t.Parallel()
	day := func(n int) string { return time.Now().UTC().AddDate(0, 0, n).Format("2006-01-02") }
	part := func(name string, from int) string {
		return fmt.Sprintf(`CREATE TABLE %s PARTITION OF ev FOR VALUES FROM ('%s') TO ('%s')`, name, day(from), day(from+1))
	}
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE ev (id int, at timestamptz, kind text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		part("ev_a", -1), part("ev_b", 0))
	for _, q := range []string{
		`BEGIN; ` + part("ev_c", 1) + `; ` + part("ev_d", 2) + `;
		CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.at := now(); RETURN NEW; END$$;
		COMMENT ON TABLE ev IS 'one partition a day, tomorrow''s made ahead'; COMMIT`,
		`ALTER TABLE ev ADD CONSTRAINT kind_ok CHECK (kind <> 'today')`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	q := `SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'`
	if l := queryOne[int](t, p.ldb, q); l != 4 {
		t.Errorf("%d partitions, want 4", l)
	}
}
