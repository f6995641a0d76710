package txshim

import (
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestPartitionIdentityDDLViaRoot: with the publication set to publish through partition
// roots, DDL through the shim that gives a partition a replica identity lacking a column of
// its root's — ATTACH PARTITION of a table keyed by a column of its own to a keyless (FULL)
// root, CREATE TABLE … PARTITION OF with a key of its own, REPLICA IDENTITY USING INDEX on a
// partition — went through, and the peer then refused the partition's first UPDATE as a
// divergence (its old row is logged by the partition's identity, sent under the root's).
// Such DDL is refused, naming the partition and the fixes; partitions that keep FULL, and a
// table given FULL before it is attached, ship their updates and deletes.
func TestPartitionIdentityDDLViaRoot(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE pr (k int NOT NULL, p int, v text) PARTITION BY LIST (p)`,
		`CREATE TABLE pr1 PARTITION OF pr FOR VALUES IN (1)`)
	for _, c := range []*pgtest.Cluster{p.local, p.peer} {
		c.Exec(t, `ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`)
	}
	for _, q := range []string{
		`CREATE TABLE pr2 (k int PRIMARY KEY, p int, v text)`,
		`CREATE TABLE pr5 (k int PRIMARY KEY, p int, v text)`,
		`CREATE UNIQUE INDEX pr1_k ON pr1 (k)`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range []string{
		`ALTER TABLE pr ATTACH PARTITION pr2 FOR VALUES IN (2)`,
		`CREATE TABLE pr4 PARTITION OF pr (PRIMARY KEY (k)) FOR VALUES IN (4)`,
		`ALTER TABLE pr1 REPLICA IDENTITY USING INDEX pr1_k`,
	} {
		err := exec(q)
		if err == nil {
			// What it led to: the partition's first update.
			for _, w := range []string{`INSERT INTO pr VALUES (1, 1, 'a'), (2, 2, 'b')`, `UPDATE pr SET v = 'x'`} {
				if err := exec(w); err != nil {
					t.Logf("%s: %v", w, err)
				}
			}
			shipped()
			t.Fatalf("%s: accepted", q)
		}
		if msg := err.Error(); !strings.Contains(msg, "publish_via_partition_root") || !strings.Contains(msg, "pr") {
			t.Errorf("%s: %v; want a refusal naming the partition and publish_via_partition_root", q, err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE pr3 PARTITION OF pr FOR VALUES IN (3)`,
		`ALTER TABLE pr5 REPLICA IDENTITY FULL`,
		`ALTER TABLE pr ATTACH PARTITION pr5 FOR VALUES IN (5)`,
		`INSERT INTO pr VALUES (1, 1, 'a'), (3, 3, 'b'), (5, 5, 'c')`,
		`UPDATE pr SET v = 'x'`,
		`UPDATE pr SET p = 3 WHERE k = 1`,
		`UPDATE pr SET p = 5 WHERE k = 3`,
		`DELETE FROM pr WHERE k = 5`,
		`ALTER TABLE pr DETACH PARTITION pr5`,
		`UPDATE pr5 SET v = 'y'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}

// TestPartitionIdentityDetachViaRoot: ALTER TABLE … DETACH PARTITION of a partitioned table
// makes it the root of its partitions: with the publication publishing through partition
// roots, their changes are then sent under its replica identity. A detached FULL table over
// partitions keyed by the old root's key went through, and the peer refused their first
// UPDATE as a divergence. Such a DETACH is refused like ATTACH; one whose new root's identity
// the partitions cover goes through.
func TestPartitionIdentityDetachViaRoot(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE pt (k int NOT NULL, p int NOT NULL, v text, PRIMARY KEY (k, p)) PARTITION BY LIST (p)`,
		`CREATE TABLE pm PARTITION OF pt FOR VALUES IN (1) PARTITION BY LIST (k)`,
		`CREATE TABLE pm1 PARTITION OF pm FOR VALUES IN (1)`,
		`CREATE TABLE pn PARTITION OF pt FOR VALUES IN (2) PARTITION BY LIST (k)`,
		`CREATE TABLE pn1 PARTITION OF pn FOR VALUES IN (1)`)
	for _, c := range []*pgtest.Cluster{p.local, p.peer} {
		c.Exec(t, `ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`)
	}
	// An intermediate table's identity is not the one its partitions' changes are sent under.
	for _, q := range []string{`ALTER TABLE pm REPLICA IDENTITY FULL`, `INSERT INTO pt VALUES (1, 1, 'a'), (1, 2, 'b')`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := exec(`ALTER TABLE pt DETACH PARTITION pm`); err == nil {
		if err := exec(`UPDATE pm SET v = 'x'`); err != nil {
			t.Logf("UPDATE pm: %v", err)
		}
		t.Fatal("ALTER TABLE pt DETACH PARTITION pm: accepted, its partition pm1's identity (k, p) against its FULL")
	} else if !strings.Contains(err.Error(), "publish_via_partition_root") || !strings.Contains(err.Error(), "pm1") {
		t.Errorf("DETACH: %v; want a refusal naming pm1 and publish_via_partition_root", err)
	}
	for _, q := range []string{`ALTER TABLE pt DETACH PARTITION pn`, `UPDATE pn SET v = 'x'`, `UPDATE pt SET v = 'y'`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
