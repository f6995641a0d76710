package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSerializationFailureAtCommit: two SERIALIZABLE transactions that each read what the
// other writes (write skew): PostgreSQL fails the second COMMIT with 40001, which clients and
// their retry loops take for "run the transaction again". Through the shim the failure comes at
// its check before the PREPARE, and the client got XX000 "tandem: commit check failed", which no
// retry loop retries. Dual and solo mode, the second commit alone and in one Query with it.
func TestSerializationFailureAtCommit(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE oncall (id int PRIMARY KEY, on_call bool NOT NULL)`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c1, c2 := s.connect(t), s.connect(t)
	for _, mode := range []Mode{ModeDual, ModeSolo} {
		for _, inQuery := range []bool{false, true} {
			s.SetMode(mode, 1)
			if _, err := c1.Exec(ctx, `TRUNCATE oncall; INSERT INTO oncall VALUES (1, true), (2, true)`); err != nil {
				t.Fatal(err)
			}
			var txs []pgx.Tx
			for _, conn := range []*pgx.Conn{c1, c2} {
				tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
				if err != nil {
					t.Fatal(err)
				}
				var n int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM oncall WHERE on_call`).Scan(&n); err != nil || n != 2 {
					t.Fatalf("count: %d, %v", n, err)
				}
				txs = append(txs, tx)
			}
			for i, tx := range txs {
				if _, err := tx.Exec(ctx, `UPDATE oncall SET on_call = false WHERE id = $1`, i+1); err != nil {
					t.Fatal(err)
				}
			}
			if err := txs[0].Commit(ctx); err != nil {
				t.Fatalf("%v: first commit: %v", mode, err)
			}
			var err error
			if inQuery {
				_, err = c2.Exec(ctx, `SELECT 1; COMMIT`)
			} else {
				err = txs[1].Commit(ctx)
			}
			if pgCode(err) != "40001" {
				t.Errorf("%v (commit in a multi-statement query %v): second commit: %v, want SQLSTATE 40001 as from PostgreSQL", mode, inQuery, err)
			}
			if st := c2.PgConn().TxStatus(); st != 'I' {
				t.Errorf("%v: status after the failed commit %c", mode, st)
				c2.Exec(ctx, "ROLLBACK")
			}
			var n int
			if err := c1.QueryRow(ctx, `SELECT count(*) FROM oncall WHERE on_call`).Scan(&n); err != nil || n != 1 {
				t.Errorf("%v: %d on call after, want 1 (%v)", mode, n, err)
			}
		}
	}
}
