package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFidelity(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE SCHEMA "Other Schema"`,
		`CREATE TYPE mood AS ENUM ('sad', 'ok')`,
		`CREATE TYPE pair AS (a int, b text)`,
		`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
		`CREATE TABLE toast (id int PRIMARY KEY, a text, big text, c int)`,
		`CREATE TABLE toastfull (a int, big text, c int)`,
		`CREATE TABLE vals (id int PRIMARY KEY, arr int[], tarr text[], comp pair, rng int4range, trng tstzrange, j jsonb, b bytea,
			n numeric, f float8, r real, ts timestamp, tz timestamptz, d date, txt text, m mood, dom posint, iv interval)`,
		`CREATE TABLE "Other Schema"."Weird ""Table""" ("select" int PRIMARY KEY, "Upper" text, "from" text, "a""b" text)`,
		`CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, dbl int GENERATED ALWAYS AS (n * 2) STORED)`,
		`CREATE TABLE attgap (id int PRIMARY KEY, a text, b text, c text)`,
		`CREATE TABLE parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu')`,
		`CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us')`,
		`CREATE TABLE par (id serial PRIMARY KEY)`,
		`CREATE TABLE chi (id serial PRIMARY KEY, p int REFERENCES par)`,
		`CREATE TABLE swap (id int PRIMARY KEY, v text)`,
		`CREATE TABLE bigkey (k text PRIMARY KEY, v int, big text)`,
		`CREATE TABLE uidx (a int NOT NULL, b text NOT NULL, v text, big text)`,
		`CREATE UNIQUE INDEX uidx_ab ON uidx (b, a)`,
		`ALTER TABLE uidx REPLICA IDENTITY USING INDEX uidx_ab`,
		`CREATE TABLE fullv (f float8, n numeric, j json, x xml, m mood, c pair, arr float8[], r numrange, ts timestamptz, iv interval, big text)`,
		`CREATE TABLE huge (id int PRIMARY KEY, b bytea, t text, v int)`,
		`CREATE TABLE enc (id int PRIMARY KEY, t text, "ü" text)`,
		`CREATE TABLE pt (id int, region text, big text, n int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE pt_a (n int, big text, region text NOT NULL, dropme int, id int NOT NULL)`,
		`ALTER TABLE pt_a DROP COLUMN dropme`,
		`ALTER TABLE pt ATTACH PARTITION pt_a FOR VALUES IN ('a')`,
		`CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN ('b')`,
		`CREATE TABLE inh_p (id int PRIMARY KEY, v text)`,
		`CREATE TABLE inh_c (extra int) INHERITS (inh_p)`,
		`ALTER TABLE inh_c ADD PRIMARY KEY (id)`,
		`CREATE TABLE "d" ("d" int PRIMARY KEY, "i" text, "u" int GENERATED ALWAYS AS IDENTITY, big text)`,
		`CREATE TABLE odd ("c" "char", nm name, bits bit(5), vb varbit, bp char(4), vc varchar(3), ts tsvector, q tsquery, ip inet, mc macaddr8, mo money, x xml, pl pg_lsn, rc regclass, rt regtype, rcfg regconfig, o oid, tt timetz, u uuid, pnt point, bx box, pg polygon, ci circle)`,
		`CREATE TABLE swapd (id int, v text, CONSTRAINT swapd_pk PRIMARY KEY (id) DEFERRABLE)`,
	)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)

	// Random, incompressible text: stored out of line (TOAST).
	const bigText = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400))`
	t.Run("toast unchanged", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"toast"},
			`INSERT INTO toast VALUES (1, 'a', `+bigText+`, 0), (2, 'b', `+bigText+`, 0)`,
			`UPDATE toast SET c = 1 WHERE id = 1`,
			`BEGIN; UPDATE toast SET c = c + 1 WHERE id = 2; UPDATE toast SET c = c + 1 WHERE id = 2; UPDATE toast SET id = 3 WHERE id = 2; UPDATE toast SET a = 'x' WHERE id = 3; COMMIT`,
			`BEGIN; INSERT INTO toast VALUES (4, 'd', `+bigText+`, 0); UPDATE toast SET c = 9 WHERE id = 4; UPDATE toast SET id = 5 WHERE id = 4; COMMIT`,
		)
	})
	t.Run("toast full identity", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"toastfull"},
			`INSERT INTO toastfull VALUES (1, `+bigText+`, 0), (1, `+bigText+`, 0), (2, NULL, 0)`,
			`UPDATE toastfull SET c = 1 WHERE a = 1`,
			`BEGIN; UPDATE toastfull SET c = c + 1; UPDATE toastfull SET a = a + 10; DELETE FROM toastfull WHERE a = 12; COMMIT`,
		)
	})
	t.Run("values", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"vals"},
			`INSERT INTO vals VALUES
			(1, '{1,NULL,3}', '{"a b","c\"d","",NULL,"NULL"}', ROW(1, 'x"y'), '[1,5)', '[2024-01-01,infinity)', '{"a": [1, 2.50, null], "b\u0001": "\u00e9"}', '\x00ff5c', 'NaN', '-0', 'NaN', 'infinity', '-infinity', 'infinity', E'tab\there\nnl \\ back', 'ok', 5, '1 day -1 second'),
			(2, '{}', '{}', ROW(NULL, NULL), 'empty', '(,)', 'null', '', 'Infinity', 'Infinity', '-Infinity', '-infinity', 'infinity', '-infinity', 'héllo wörld ✓ 😀', 'sad', 1, '-178000000 years'),
			(3, '[0:1]={7,8}', '{{a,b},{c,d}}', NULL, '(3,4]', NULL, '1e400', '\x', '-Infinity', '1e-320', '1.17549435e-38', '294276-12-31 23:59:59.999999', '4713-01-01 00:00:00 BC', '5874897-12-31', '', NULL, NULL, NULL)`,
			`UPDATE vals SET f = '-0' WHERE id = 2`,
			`UPDATE vals SET n = 1.50 WHERE id = 1`,
		)
	})
	t.Run("many values copy", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"vals"},
			`INSERT INTO vals SELECT 100 + g, '{1,NULL}', '{"\\.", "a\tb", "\\N"}', ROW(g, E'\\.'::text)::pair, '[1,5)', NULL, '{"k": "\\\\."}', '\x5c2e', 'NaN', '-0', 'NaN', 'infinity', '-infinity', '-infinity', E'\\.', 'ok', g, '1 mon' FROM generate_series(1, 100) g`,
			`INSERT INTO vals (id, txt) SELECT 300 + g, CASE WHEN g % 2 = 0 THEN E'\\.' ELSE E'\r\n\\.\r\n' END FROM generate_series(1, 100) g`,
		)
	})
	t.Run("enum added", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"vals"},
			`ALTER TYPE mood ADD VALUE 'happy'`,
			`INSERT INTO vals (id, m) VALUES (10, 'happy')`,
			`BEGIN; CREATE TYPE mood2 AS ENUM ('a'); CREATE TABLE em (id int PRIMARY KEY, m mood2); INSERT INTO em VALUES (1, 'a'); ALTER TYPE mood ADD VALUE 'meh'; COMMIT`,
			`BEGIN; ALTER TYPE mood2 ADD VALUE 'b' BEFORE 'a'; ALTER TYPE mood2 ADD VALUE 'c'; COMMIT`,
			`INSERT INTO em VALUES (2, 'b'), (3, 'c'), (4, 'a')`,
			`UPDATE vals SET m = 'meh' WHERE id = 10`,
		)
		fidelityStep(t, p, sh, conn, []string{"em"})
	})
	t.Run("names", func(t *testing.T) {
		tb := `"Other Schema"."Weird ""Table"""`
		fidelityStep(t, p, sh, conn, []string{tb},
			`INSERT INTO `+tb+` VALUES (1, 'U', 'f', 'q'), (2, NULL, NULL, NULL)`,
			`UPDATE `+tb+` SET "select" = 3, "a""b" = 'z' WHERE "select" = 2`,
			`DELETE FROM `+tb+` WHERE "select" = 1`,
			`INSERT INTO `+tb+` SELECT g, 'U' || g, NULL, E'\\N' FROM generate_series(10, 200) g`,
		)
	})
	t.Run("generated identity", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"gen"},
			`INSERT INTO gen (n) VALUES (1), (2)`,
			`INSERT INTO gen (id, n) OVERRIDING SYSTEM VALUE VALUES (5000, 3)`,
			`UPDATE gen SET n = 10 WHERE id = 1`,
			`UPDATE gen SET id = DEFAULT WHERE id = 2`,
			`INSERT INTO gen (n) SELECT g FROM generate_series(1, 100) g`,
			`INSERT INTO gen (id, n) OVERRIDING SYSTEM VALUE SELECT g, g FROM generate_series(1000, 1100) g`,
		)
	})
	t.Run("attnum gaps", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"attgap"},
			`INSERT INTO attgap VALUES (1, 'a', 'b', 'c')`,
			`ALTER TABLE attgap DROP COLUMN b`,
			`INSERT INTO attgap VALUES (2, 'a2', 'c2')`,
			`ALTER TABLE attgap ADD COLUMN b text DEFAULT 'dflt'`,
			`INSERT INTO attgap VALUES (3, 'a3', 'c3', 'b3')`,
			`UPDATE attgap SET b = 'bb' WHERE id = 1`,
			`BEGIN; ALTER TABLE attgap DROP COLUMN a; UPDATE attgap SET c = 'cc'; ALTER TABLE attgap ADD COLUMN a int; UPDATE attgap SET a = id; COMMIT`,
		)
	})
	t.Run("keys", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"swap", "swapd"},
			`INSERT INTO swap VALUES (1, 'one'), (2, 'two')`,
			`INSERT INTO swapd VALUES (1, 'one'), (2, 'two')`,
			`BEGIN; DELETE FROM swap WHERE id = 1; INSERT INTO swap VALUES (1, 'uno'); UPDATE swap SET v = v || '!' WHERE id = 1; UPDATE swap SET v = v || '!' WHERE id = 1; COMMIT`,
			`BEGIN; UPDATE swap SET id = 3 WHERE id = 1; UPDATE swap SET id = 1 WHERE id = 2; UPDATE swap SET id = 2 WHERE id = 3; COMMIT`,
			`UPDATE swapd SET id = 3 - id`,
		)
	})
	t.Run("partitions", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"parted", "parted_eu", "parted_us"},
			`INSERT INTO parted VALUES (1, 'eu', 10), (2, 'us', 20)`,
			`UPDATE parted SET region = 'us' WHERE id = 1`,
			`BEGIN; UPDATE parted SET region = 'eu'; UPDATE parted SET v = v + 1 WHERE id = 2; COMMIT`,
		)
	})
	t.Run("toasted key", func(t *testing.T) {
		const randKey = `(SELECT string_agg(chr(33 + (random() * 90)::int), '') FROM generate_series(1, 2500))`
		fidelityStep(t, p, sh, conn, []string{"bigkey"},
			`INSERT INTO bigkey VALUES (`+randKey+`, 1, `+bigText+`), ('short', 1, `+bigText+`)`,
			`UPDATE bigkey SET v = 2`,
			`BEGIN; UPDATE bigkey SET v = 3 WHERE k <> 'short'; UPDATE bigkey SET k = k || 'x' WHERE k <> 'short'; UPDATE bigkey SET v = 4; COMMIT`,
			`DELETE FROM bigkey WHERE k = 'short'`,
		)
	})
	t.Run("index identity", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"uidx"},
			`INSERT INTO uidx VALUES (1, 'a', 'x', `+bigText+`), (2, 'a', 'y', NULL)`,
			`UPDATE uidx SET v = 'z'`,
			`UPDATE uidx SET a = a + 10, big = 'small' WHERE a = 1`,
			`BEGIN; UPDATE uidx SET b = 'b' WHERE a = 2; UPDATE uidx SET v = NULL; DELETE FROM uidx WHERE a = 11; COMMIT`,
		)
	})
	t.Run("full identity values", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"fullv"},
			`INSERT INTO fullv VALUES
			('-0', 'NaN', '{"a":1,  "a":2}', '<a/>text', 'ok', ROW(1, NULL), '{NaN,-0}', '(1.0,2.00]', '-infinity', '1 day', `+bigText+`),
			('0', 'NaN', '{"a":1,"a":2}', '<a/>text', 'ok', ROW(1, NULL), '{NaN,0}', '(1,2]', '-infinity', '24:00:00', `+bigText+`),
			('NaN', '1.0', '[]', NULL, NULL, NULL, NULL, 'empty', 'infinity', '-1 mon', NULL),
			('NaN', '1.00', '[]', NULL, NULL, NULL, NULL, 'empty', 'infinity', '-30 days', NULL)`,
			`UPDATE fullv SET m = 'sad' WHERE f::text = '-0'`,
			`UPDATE fullv SET ts = now() WHERE n::text = '1.00'`,
			`BEGIN; UPDATE fullv SET iv = iv * 2; UPDATE fullv SET big = 'b' WHERE f = 0 AND m = 'ok'; COMMIT`,
			`DELETE FROM fullv WHERE n::text = '1.0'`,
			`DELETE FROM fullv WHERE f::text = '-0'`,
		)
	})
	t.Run("huge", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"huge"},
			`INSERT INTO huge SELECT 1, decode(string_agg(md5(g::text || random()::text), ''), 'hex'), NULL, 0 FROM generate_series(1, 150000) g`,
			`INSERT INTO huge SELECT 2, NULL, string_agg(md5(g::text || random()::text), ''), 0 FROM generate_series(1, 100000) g`,
			`UPDATE huge SET v = v + 1`,
			`BEGIN; UPDATE huge SET t = t || 'x' WHERE id = 2; UPDATE huge SET id = 3 WHERE id = 1; COMMIT`,
		)
	})
	t.Run("encoding", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"enc"},
			`SET client_encoding = 'LATIN1'`,
			"INSERT INTO enc VALUES (1, 'caf\u00e9', 'x')",
			`INSERT INTO enc VALUES (2, U&'\00e9t\00e9', 'y')`,
			`ALTER TABLE enc ADD COLUMN "é" text DEFAULT 'déf'`,
			`UPDATE enc SET "é" = 'ça' WHERE id = 1`,
			`RESET client_encoding`,
			`INSERT INTO enc VALUES (3, '日本語', 'z', '€')`,
		)
	})
	t.Run("partition move toast", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"pt", "pt_a", "pt_b"},
			`INSERT INTO pt VALUES (1, 'a', `+bigText+`, 0), (2, 'b', `+bigText+`, 0)`,
			`UPDATE pt SET region = 'b' WHERE id = 1`,
			`BEGIN; UPDATE pt SET n = 5 WHERE id = 1; UPDATE pt SET region = 'a', n = 6 WHERE id = 1; UPDATE pt SET n = 7; COMMIT`,
			`UPDATE pt SET id = id + 10, region = 'a'`,
		)
	})
	t.Run("inheritance", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"inh_p", "ONLY inh_p", "inh_c"},
			`INSERT INTO inh_p VALUES (1, 'p')`,
			`INSERT INTO inh_c VALUES (1, 'c', 1)`,
			`UPDATE inh_p SET v = v || '!'`,
			`UPDATE inh_p SET id = 2 WHERE v = 'c!'`,
			`DELETE FROM inh_p WHERE id = 1`,
		)
	})
	t.Run("cte names", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{`"d"`},
			`INSERT INTO "d" ("d", "i", big) VALUES (1, 'x', `+bigText+`), (2, 'y', NULL)`,
			`UPDATE "d" SET "u" = DEFAULT WHERE "d" = 1`,
			`UPDATE "d" SET "i" = 'z', "d" = 3 WHERE "d" = 2`,
			`BEGIN; UPDATE "d" SET "i" = 'w'; UPDATE "d" SET "u" = DEFAULT; COMMIT`,
		)
	})
	t.Run("odd types", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"odd"},
			`INSERT INTO odd VALUES (E'\\377', 'nm', B'10101', B'1', 'ab', 'abc', 'a:1 b:2', 'a & !b', '10.0.0.1/8', '08:00:2b:01:02:03:04:05', 12.34, '<x a="1">t</x>', '1/2', 'odd', 'int4[]', 'english', 7, '10:00+05:30', gen_random_uuid(), '(1.5,-0)', '((1,2),(3,4))', '((0,0),(1,1),(1,0))', '<(1,1),2>')`,
			`INSERT INTO odd ("c", bp) VALUES ('', ''), (NULL, ' a ')`,
			`UPDATE odd SET nm = 'nm2' WHERE "c" = E'\\377'`,
			`DELETE FROM odd WHERE bp = ' a '`,
			`UPDATE odd SET o = 8 WHERE bp = ''`,
		)
	})
	t.Run("truncate", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"par", "chi"},
			`INSERT INTO par DEFAULT VALUES`,
			`INSERT INTO chi (p) VALUES (1)`,
			`TRUNCATE par CASCADE`,
			`INSERT INTO par DEFAULT VALUES`,
			`TRUNCATE par RESTART IDENTITY CASCADE`,
			`INSERT INTO par DEFAULT VALUES`,
			`INSERT INTO chi (p) VALUES (1)`,
		)
	})
}

// TestFidelitySpill: a transaction past the spill threshold, with DDL and TOASTed values in its
// spilled part, lands on the peer as it is on the local database, as a dual commit and as a
// plain one shipped from the stream.
func TestFidelitySpill(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) { c.SpillBytes = fidelitySpill }, Options{},
		`CREATE TABLE sp (id int PRIMARY KEY, a text, big text, n int)`,
		`CREATE TABLE sq (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	const bigText = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400))`
	body := `INSERT INTO sp (id, a, big, n) SELECT g, 'a' || g, CASE WHEN g % 50 = 0 THEN ` + bigText + ` END, 0 FROM generate_series(1, 500) g;
UPDATE sp SET n = 1 WHERE id % 50 = 0;
ALTER TABLE sp ADD COLUMN extra int DEFAULT 7;
ALTER TABLE sp DROP COLUMN a;
INSERT INTO sp (id, big, n, extra) SELECT g, NULL, g, g FROM generate_series(501, 700) g;
UPDATE sp SET id = id + 1000, n = 2 WHERE id % 50 = 0;
INSERT INTO sq SELECT g, 'x' FROM generate_series(1, 100) g;
ALTER TABLE sq ALTER COLUMN v TYPE varchar(10);
UPDATE sq SET v = 'y' || id;
DELETE FROM sp WHERE id % 7 = 0;`
	fidelityStep(t, p, sh, conn, []string{"sp", "sq"}, "BEGIN; "+body+" COMMIT")
	// The same once more, solo: a plain commit, shipped from the stream.
	shim.SetMode(ModeSolo, 1)
	fidelityStepSolo := "BEGIN; DELETE FROM sp; DELETE FROM sq; ALTER TABLE sp ADD COLUMN a text; ALTER TABLE sp DROP COLUMN extra; " + body + " INSERT INTO sq VALUES (100000, 'marker'); COMMIT"
	ctx := capCtx(t, 60*time.Second)
	if _, err := conn.Exec(ctx, fidelityStepSolo, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the marker on the peer", 30*time.Second, func() bool {
		return sh.Err() != nil || queryOne[int](t, p.pdb, `SELECT count(*) FROM sq WHERE id = 100000`) == 1
	})
	fidelityStep(t, p, sh, conn, []string{"sp", "sq"})
}

// fidelitySpill is TestFidelitySpill's spill threshold.
var fidelitySpill int64 = 4 << 10

// TestFidelitySequenceRolledBack: values nextval handed out in a transaction that rolled back
// are past on the peer's sequence too, once positions are copied.
func TestFidelitySequenceRolledBack(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) { c.SequenceInterval = 50 * time.Millisecond }, Options{},
		`CREATE TABLE st (id serial PRIMARY KEY, v text)`,
		`CREATE TABLE si (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)`,
		`CREATE SEQUENCE free_seq`,
		`CREATE SEQUENCE down_seq INCREMENT -1 MINVALUE -1000 MAXVALUE -1 START -1`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	for _, q := range []string{
		`INSERT INTO st (v) VALUES ('a')`,
		`BEGIN; INSERT INTO st (v) SELECT 'x' FROM generate_series(1, 50); INSERT INTO si (v) SELECT 'x' FROM generate_series(1, 50); SELECT nextval('free_seq'), nextval('down_seq') FROM generate_series(1, 20); ROLLBACK`,
		`SELECT nextval('free_seq')`,
		`INSERT INTO si (v) VALUES ('b')`,
	} {
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%.100s: %v", q, err)
		}
	}
	// The values the rolled-back transaction took are in no row: only the copies of positions
	// (every SequenceInterval) carry them, and until one ran after the last statement verify
	// rightly names the peer's sequences behind (CI failed so once, comparing at once).
	positions := []string{`SELECT last_value FROM st_id_seq`, `SELECT last_value FROM si_id_seq`, `SELECT last_value FROM free_seq`, `SELECT -last_value FROM down_seq`}
	waitForLong(t, "the peer's sequences at or past the local ones", 10*time.Second, func() bool {
		if queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL`) != 4 {
			return false
		}
		for _, q := range positions {
			if queryOne[int64](t, p.pdb, q) < queryOne[int64](t, p.ldb, q) {
				return false
			}
		}
		return true
	})
	fidelityStep(t, p, sh, conn, []string{"st", "si"})
	if err := BumpSequences(capCtx(t, 10*time.Second), p.peer.DSN("app")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT nextval('st_id_seq')`, `SELECT nextval('si_id_seq')`} {
		l, r := queryOne[int64](t, p.ldb, q), queryOne[int64](t, p.pdb, q)
		if r < l {
			t.Errorf("%s: peer %d behind local %d", q, r, l)
		}
	}
}

// TestFidelityKeylessPartitions: partitioned tables without a key, made before install and
// through the shim after it, take updates and deletes on both databases alike.
func TestFidelityKeylessPartitions(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE kp (a int, b text) PARTITION BY LIST (b)`,
		`CREATE TABLE kp1 PARTITION OF kp FOR VALUES IN ('x')`,
		`CREATE TABLE kp2 PARTITION OF kp FOR VALUES IN ('y')`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"kp"},
		`INSERT INTO kp VALUES (1, 'x'), (1, 'x'), (2, 'y')`,
		`UPDATE kp SET a = 3 WHERE a = 2`,
		`UPDATE kp SET b = 'y' WHERE a = 3`,
		`DELETE FROM kp WHERE a = 3`,
		`CREATE TABLE kq (a int, b text) PARTITION BY LIST (b)`,
		`CREATE TABLE kq1 PARTITION OF kq FOR VALUES IN ('x')`,
		`CREATE TABLE kq2 (a int, b text)`,
		`ALTER TABLE kq ATTACH PARTITION kq2 FOR VALUES IN ('y')`,
		`CREATE TABLE kq3 (LIKE kq)`,
		`INSERT INTO kq VALUES (1, 'x'), (1, 'x'), (2, 'y')`,
		`UPDATE kq SET a = 3`,
		`UPDATE kq SET b = 'y' WHERE b = 'x'`,
		`DELETE FROM kq WHERE a = 3 AND b = 'x'`,
	)
	fidelityStep(t, p, sh, conn, []string{"kq"})
}

// TestFidelityConcurrent: sessions at once delete and insert again the same keys, move keys,
// and update rows with TOASTed values left unchanged, in tables with a key and without one.
func TestFidelityConcurrent(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE ck (id int PRIMARY KEY, n int, big text)`,
		`CREATE TABLE cf (id int, n int, big text)`,
		`INSERT INTO ck SELECT g, 0, NULL FROM generate_series(1, 40) g`,
		`INSERT INTO cf SELECT id, n, big FROM ck`)
	catchUpToDual(t, sh, shim)
	setup := shim.connect(t)
	ctx := capCtx(t, 120*time.Second)
	if _, err := setup.Exec(ctx, `UPDATE ck SET big = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400)) WHERE id % 2 = 0; UPDATE cf SET big = ck.big FROM ck WHERE ck.id = cf.id`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	const workers = 4
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			c := shim.connect(t)
			var err error
			for i := 0; i < 60 && err == nil; i++ {
				k := (i*7+w*3)%40 + 1
				var q string
				switch i % 5 {
				case 0:
					q = fmt.Sprintf(`BEGIN; DELETE FROM ck WHERE id = %[1]d; INSERT INTO ck VALUES (%[1]d, %[2]d, NULL); COMMIT`, k, i)
				case 1:
					q = fmt.Sprintf(`UPDATE ck SET n = n + 1 WHERE id = %d`, k)
				case 2:
					q = fmt.Sprintf(`BEGIN; UPDATE ck SET id = -id WHERE id = %[1]d; UPDATE ck SET id = -id, n = n + 1 WHERE id = -%[1]d; COMMIT`, k)
				case 3:
					q = fmt.Sprintf(`UPDATE cf SET n = n + 1 WHERE id = %d`, k)
				case 4:
					q = fmt.Sprintf(`BEGIN; DELETE FROM cf WHERE id = %[1]d; INSERT INTO cf SELECT id, n, big FROM ck WHERE id = %[1]d; COMMIT`, k)
				}
				if _, err = c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
					if pgErrCode(err) == "40P01" || pgErrCode(err) == "23505" {
						c.Exec(ctx, "ROLLBACK")
						err = nil
						continue
					}
					err = fmt.Errorf("%s: %w", q, err)
				}
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	fidelityStep(t, p, sh, setup, []string{"ck", "cf"})
}

// TestFidelityCatchUp: the tricky changes of TestFidelity, committed solo while the peer is
// down, reach it through catch-up (runs of plain commits in one peer transaction).
func TestFidelityCatchUp(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{OnPeerDown: func() bool { return true }},
		`CREATE TABLE toast (id int PRIMARY KEY, a text, big text, c int)`,
		`CREATE TABLE toastfull (a int, big text, c int)`,
		`CREATE TABLE swapd (id int, v text, CONSTRAINT swapd_pk PRIMARY KEY (id) DEFERRABLE)`,
		`CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, dbl int GENERATED ALWAYS AS (n * 2) STORED)`,
		`CREATE TABLE pt (id int, region text, big text, n int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE pt_a PARTITION OF pt FOR VALUES IN ('a')`,
		`CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN ('b')`,
		`CREATE TABLE par (id serial PRIMARY KEY)`,
		`CREATE TABLE chi (id serial PRIMARY KEY, p int REFERENCES par)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	tables := []string{"toast", "toastfull", "swapd", "gen", "pt", "par", "chi"}
	const bigText = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400))`
	fidelityStep(t, p, sh, conn, tables,
		`INSERT INTO toast VALUES (1, 'a', `+bigText+`, 0), (2, 'b', `+bigText+`, 0)`,
		`INSERT INTO toastfull VALUES (1, `+bigText+`, 0), (1, `+bigText+`, 0), (2, NULL, 0)`,
		`INSERT INTO swapd VALUES (1, 'one'), (2, 'two')`,
		`INSERT INTO gen (n) VALUES (1), (2)`,
		`INSERT INTO pt VALUES (1, 'a', `+bigText+`, 0), (2, 'b', `+bigText+`, 0)`)

	p.peer.Kill()
	ctx := capCtx(t, 120*time.Second)
	waitForLong(t, "the shim to go solo", 20*time.Second, func() bool {
		conn.Exec(ctx, `INSERT INTO par DEFAULT VALUES`)
		m, _ := shim.Mode()
		return m == ModeSolo
	})
	for i := 0; i < 3; i++ {
		for _, q := range []string{
			`UPDATE toast SET c = c + 1 WHERE id = 1`,
			`BEGIN; UPDATE toast SET c = c + 1 WHERE id = 2; UPDATE toast SET id = 3 WHERE id = 2; UPDATE toast SET a = 'x' WHERE id = 3; COMMIT`,
			`UPDATE toast SET id = 2 WHERE id = 3`,
			`BEGIN; DELETE FROM toast WHERE id = 1; INSERT INTO toast VALUES (1, 'again', NULL, 0); COMMIT`,
			`UPDATE toast SET big = ` + bigText + ` WHERE id = 1`,
			`UPDATE toastfull SET c = c + 1 WHERE a = 1`,
			`UPDATE toastfull SET a = a + 10`,
			`UPDATE toastfull SET a = a - 10`,
			`UPDATE swapd SET id = 3 - id`,
			`UPDATE gen SET id = DEFAULT WHERE n = 1`,
			`UPDATE gen SET n = n + 1`,
			`UPDATE pt SET region = CASE region WHEN 'a' THEN 'b' ELSE 'a' END`,
			`UPDATE pt SET n = n + 1`,
			`INSERT INTO chi (p) SELECT max(id) FROM par`,
			`TRUNCATE par RESTART IDENTITY CASCADE`,
			`INSERT INTO par DEFAULT VALUES`,
		} {
			if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(ctx, func(ctx context.Context) (func(), error) {
		release, err := shim.HoldCommits(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			if sh.PeerSynced() {
				_, term := shim.Mode()
				shim.SwitchMode(ModeSolo, ModeDual, term)
			}
			release()
		}, nil
	}); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	fidelityStep(t, p, sh, conn, tables)
}

// TestFidelitySavepoints: changes and DDL of subtransactions rolled back do not reach the peer;
// those of subtransactions released do.
func TestFidelitySavepoints(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE sv (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"sv"},
		`BEGIN; INSERT INTO sv VALUES (1, 'a'); SAVEPOINT s; INSERT INTO sv VALUES (2, 'b'); UPDATE sv SET v = 'x' WHERE id = 1; ROLLBACK TO s; INSERT INTO sv VALUES (3, 'c'); COMMIT`,
		`BEGIN; SAVEPOINT s; ALTER TABLE sv ADD COLUMN w int DEFAULT 5; UPDATE sv SET w = 6; ROLLBACK TO s; UPDATE sv SET v = v || '!'; SAVEPOINT t; ALTER TABLE sv ADD COLUMN z int DEFAULT 7; RELEASE t; UPDATE sv SET z = id; COMMIT`,
		`BEGIN; SAVEPOINT a; DELETE FROM sv WHERE id = 1; SAVEPOINT b; INSERT INTO sv VALUES (1, 'again', 0); ROLLBACK TO b; INSERT INTO sv VALUES (1, 'third', 1); RELEASE a; COMMIT`,
	)
}
