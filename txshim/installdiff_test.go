package txshim

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInstallSchemaDifferences: install compared the application tables' columns (type,
// NOT NULL, identity, generated or not, primary key) and nothing else, while the shim ships rows
// by table and column name into statements the peer runs under its own definitions. Each
// difference below, install accepted; through a dual shim it then either diverged silently (the
// peer computing or storing another value, or its tables holding the rows differently) or made
// the peer refuse the writes the local database took (the client's transaction rolled back, as
// diverged). Install must refuse each, naming it; differences that do not touch the apply's
// rows (foreign keys, defaults, plain indexes, column order, constraint names) it still takes.
func TestInstallSchemaDifferences(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		both        []string
		local, peer []string
		want        []string // in the refusal; nil: install takes it
	}{
		// Silent divergence.
		{name: "generated expression", want: []string{`"public"."t"."g"`, "(n * 2)", "(n * 3)"},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 2) STORED)`},
			peer:  []string{`CREATE TABLE t (id int PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 3) STORED)`}},
		{name: "domain typmod", want: []string{`type "public"."amount"`, "numeric(12,4)", "numeric(12,2)"},
			local: []string{`CREATE DOMAIN amount AS numeric(12,4)`, `CREATE TABLE t (id int PRIMARY KEY, v amount)`},
			peer:  []string{`CREATE DOMAIN amount AS numeric(12,2)`, `CREATE TABLE t (id int PRIMARY KEY, v amount)`}},
		{name: "composite attributes", want: []string{`type "public"."pair"`, "numeric(10,4)"},
			local: []string{`CREATE TYPE pair AS (a numeric(10,4), b text)`, `CREATE TABLE t (id int PRIMARY KEY, v pair)`},
			peer:  []string{`CREATE TYPE pair AS (a numeric(10,1), b text)`, `CREATE TABLE t (id int PRIMARY KEY, v pair)`}},
		{name: "trigger firing in the apply", want: []string{`table "public"."t"`, "ENABLE ALWAYS", "on the peer database only"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`},
			peer: []string{`CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + 1; RETURN NEW; END$$`,
				`CREATE TRIGGER bump BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION bump()`, `ALTER TABLE t ENABLE ALWAYS TRIGGER bump`}},
		{name: "partitioned or plain", want: []string{`table "public"."pt"`, "partitioned by RANGE (id)", `partition of public.pt`},
			local: []string{`CREATE TABLE pt (id int PRIMARY KEY) PARTITION BY RANGE (id)`, `CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (100)`},
			peer:  []string{`CREATE TABLE pt (id int PRIMARY KEY)`, `CREATE TABLE pt1 (id int PRIMARY KEY)`}},
		{name: "inheritance", want: []string{`table "public"."child"`, "inherits from public.parent"},
			both:  []string{`CREATE TABLE parent (id int PRIMARY KEY)`},
			local: []string{`CREATE TABLE child (id int PRIMARY KEY) INHERITS (parent)`},
			peer:  []string{`CREATE TABLE child (id int PRIMARY KEY)`}},
		{name: "unlogged", want: []string{`table "public"."t"`, "UNLOGGED"},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY)`},
			peer:  []string{`CREATE UNLOGGED TABLE t (id int PRIMARY KEY)`}},
		// The peer refuses rows the local database took.
		{name: "partition bounds", want: []string{`table "public"."pt1"`, "FOR VALUES FROM (0) TO (100)", "FOR VALUES FROM (0) TO (50)"},
			both:  []string{`CREATE TABLE pt (id int PRIMARY KEY) PARTITION BY RANGE (id)`},
			local: []string{`CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (100)`, `CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (100) TO (200)`},
			peer:  []string{`CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (50)`, `CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (50) TO (200)`}},
		{name: "domain check", want: []string{`type "public"."pos"`, "CHECK ((VALUE > 0))"},
			local: []string{`CREATE DOMAIN pos AS int`, `CREATE TABLE t (id int PRIMARY KEY, v pos)`},
			peer:  []string{`CREATE DOMAIN pos AS int CHECK (VALUE > 0)`, `CREATE TABLE t (id int PRIMARY KEY, v pos)`}},
		{name: "enum labels", want: []string{`type "public"."mood"`, "'glad'", "'happy'"},
			local: []string{`CREATE TYPE mood AS ENUM ('calm', 'glad')`, `CREATE TABLE t (id int PRIMARY KEY, v mood)`},
			peer:  []string{`CREATE TYPE mood AS ENUM ('calm', 'happy')`, `CREATE TABLE t (id int PRIMARY KEY, v mood)`}},
		{name: "check constraint", want: []string{`table "public"."t"`, "constraint CHECK ((v > 0)) on the peer database only"},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`},
			peer:  []string{`CREATE TABLE t (id int PRIMARY KEY, v int CHECK (v > 0))`}},
		{name: "unique", want: []string{`table "public"."t"`, "unique index USING btree (v) on the peer database only"},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`},
			peer:  []string{`CREATE TABLE t (id int PRIMARY KEY, v int UNIQUE)`}},
		{name: "unique index", want: []string{`table "public"."t"`, "unique index USING btree (lower(v))"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v text)`},
			peer: []string{`CREATE UNIQUE INDEX ON t (lower(v))`}},
		{name: "collation", want: []string{`"public"."t"."k"`, "COLLATE public.ci"},
			both:  []string{`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`},
			local: []string{`CREATE TABLE t (k text PRIMARY KEY)`},
			peer:  []string{`CREATE TABLE t (k text COLLATE ci PRIMARY KEY)`}},
		{name: "sequence bounds", want: []string{`sequence "public"."s"`, "MAXVALUE 100"},
			local: []string{`CREATE SEQUENCE s`},
			peer:  []string{`CREATE SEQUENCE s MAXVALUE 100`}},
		// The same schema read under other settings: constants printed after IntervalStyle and
		// TimeZone.
		{name: "the same constants under other settings",
			both: []string{`CREATE TABLE ev (id int PRIMARY KEY, d interval CHECK (d < '1 day 02:00:00'))`,
				`CREATE TABLE log (at timestamptz PRIMARY KEY) PARTITION BY RANGE (at)`,
				`CREATE TABLE log_2024 PARTITION OF log FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')`},
			local: []string{`ALTER DATABASE app SET timezone = 'Europe/Berlin'`, `ALTER DATABASE app SET intervalstyle = 'sql_standard'`},
			peer:  []string{`ALTER DATABASE app SET timezone = 'America/New_York'`}},
		// Differences the apply's rows do not meet.
		{name: "harmless",
			local: []string{`CREATE TABLE p (id int PRIMARY KEY)`, `CREATE TABLE t (id int PRIMARY KEY, a int, b text DEFAULT 'x', CONSTRAINT one CHECK (a > 0), UNIQUE (b))`,
				`CREATE SEQUENCE s START 10`, `CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
				`CREATE TRIGGER f BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`},
			peer: []string{`CREATE TABLE p (id int PRIMARY KEY)`, `CREATE TABLE t (b text, id int PRIMARY KEY, a int REFERENCES p, CONSTRAINT other CHECK (a > 0), CONSTRAINT b_unique UNIQUE (b))`,
				`CREATE INDEX ON t (a)`, `CREATE SEQUENCE s START 500`}},
		// The same schema made by other means, or tuned differently, where the apply's rows meet
		// nothing different: install refused each as a difference — triggers (firing in the apply)
		// named differently, a CHECK validated on one side and NOT VALID on the other (table and
		// domain), an index's storage parameters, a UNIQUE constraint against a unique index.
		{name: "made differently",
			both: []string{`CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
				`CREATE TABLE t (id int PRIMARY KEY, v int, w int, x int)`},
			local: []string{
				`CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`, `ALTER TABLE t ENABLE ALWAYS TRIGGER audit`,
				`ALTER TABLE t ADD CONSTRAINT pos CHECK (v > 0)`,
				`CREATE DOMAIN d AS int CHECK (VALUE > 0)`, `CREATE TABLE u (id int PRIMARY KEY WITH (fillfactor = 70), v d)`,
				`ALTER TABLE t ADD UNIQUE (w)`,
				`CREATE UNIQUE INDEX ON t (x) WITH (deduplicate_items = off)`,
				`CREATE TABLE r (id int PRIMARY KEY, p point, EXCLUDE USING gist (circle(p, 1) WITH &&) WITH (fillfactor = 50))`},
			peer: []string{
				`CREATE TRIGGER t_audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`, `ALTER TABLE t ENABLE ALWAYS TRIGGER t_audit`,
				`ALTER TABLE t ADD CONSTRAINT pos CHECK (v > 0) NOT VALID`,
				`CREATE DOMAIN d AS int`, `ALTER DOMAIN d ADD CHECK (VALUE > 0) NOT VALID`, `CREATE TABLE u (id int PRIMARY KEY, v d)`,
				`CREATE UNIQUE INDEX ON t (w)`,
				`CREATE UNIQUE INDEX ON t (x)`,
				`CREATE TABLE r (id int PRIMARY KEY, p point, EXCLUDE USING gist (circle(p, 1) WITH &&))`}},
	}
	// One pair of clusters for every case, each case in a database of its own on each (made as
	// the clusters' own, from template1) and installed as a site of its own: what Install
	// compares and makes — the schema, Tandem's objects, the slot tandem_<site> — is the
	// database's or the site's. A pair of clusters for each case took most of the test's time.
	// A case's ALTER DATABASE app names the clusters' own database: the case's is put in.
	p := startCapPair(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, site := fmt.Sprintf("diff%d", i), fmt.Sprintf("a%d", i)
			p.both(t, "CREATE DATABASE "+name)
			ldb, pdb := p.local.Open(t, name), p.peer.Open(t, name)
			run := func(dbs []*sql.DB, stmts []string) {
				t.Helper()
				for _, s := range stmts {
					s = strings.ReplaceAll(s, "ALTER DATABASE app ", "ALTER DATABASE "+name+" ")
					for _, db := range dbs {
						if _, err := db.Exec(s); err != nil {
							t.Fatalf("%s: %v", s, err)
						}
					}
				}
			}
			run([]*sql.DB{ldb, pdb}, tc.both)
			run([]*sql.DB{ldb}, tc.local)
			run([]*sql.DB{pdb}, tc.peer)
			err := Install(capCtx(t, 60*time.Second), site, p.local.DSN(name), p.peer.DSN(name), quietLogger())
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Install refused differences the apply does not meet: %v", err)
			case tc.want == nil:
			case err == nil:
				t.Fatal("Install accepted the difference")
			default:
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the refusal does not name %q:\n%v", w, err)
					}
				}
			}
		})
	}
}

// TestInstallEncoding: a database whose encoding is not UTF8 (LATIN1) could not be installed:
// the event triggers' function carried a non-ASCII character (in a comment), which the server
// could not convert ("has no equivalent in encoding LATIN1") — after install had set up the
// other database. And two databases of different encodings went unnoticed: the peer converts
// every shipped value into its own encoding, refusing those it cannot hold.
func TestInstallEncoding(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
	p.peer.Exec(t, `CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
	ctx := capCtx(t, 60*time.Second)
	err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("latin"), quietLogger())
	if err == nil || !strings.Contains(err.Error(), "the database encoding is UTF8 on the local database but LATIN1 on the peer") {
		t.Fatalf("Install over a UTF8 and a LATIN1 database: %v, want a refusal naming the encodings", err)
	}
	if err := Install(ctx, "a", p.local.DSN("latin"), p.peer.DSN("latin"), quietLogger()); err != nil {
		t.Fatalf("Install over two LATIN1 databases: %v", err)
	}
}
