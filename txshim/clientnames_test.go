package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestClientNames: the client's names that begin with the shim's reserved prefix are renamed in
// every message that carries one, and other messages pass as they are, without allocating.
func TestClientNames(t *testing.T) {
	enc := func(m pgproto3.FrontendMessage) (byte, []byte) {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b[0], b[5:]
	}
	cases := []struct{ in, want pgproto3.FrontendMessage }{
		{&pgproto3.Parse{Name: "tandem_shim_kept_1", Query: "SELECT 1", ParameterOIDs: []uint32{23}}, &pgproto3.Parse{Name: "tandem_shim_ckept_1", Query: "SELECT 1", ParameterOIDs: []uint32{23}}},
		{&pgproto3.Parse{Name: "s1", Query: "SELECT 'tandem_shim_x'"}, &pgproto3.Parse{Name: "s1", Query: "SELECT 'tandem_shim_x'"}},
		{&pgproto3.Bind{DestinationPortal: "tandem_shim_internal", PreparedStatement: "tandem_shim_begin", Parameters: [][]byte{[]byte("x")}}, &pgproto3.Bind{DestinationPortal: "tandem_shim_cinternal", PreparedStatement: "tandem_shim_cbegin", Parameters: [][]byte{[]byte("x")}}},
		{&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "tandem_shim_"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "tandem_shim_c"}},
		{&pgproto3.Bind{DestinationPortal: "tandem_shim_cx", PreparedStatement: ""}, &pgproto3.Bind{DestinationPortal: "tandem_shim_ccx", PreparedStatement: ""}},
		{&pgproto3.Execute{Portal: "tandem_shim_internal", MaxRows: 7}, &pgproto3.Execute{Portal: "tandem_shim_cinternal", MaxRows: 7}},
		{&pgproto3.Describe{ObjectType: 'S', Name: "tandem_shim_kept_2"}, &pgproto3.Describe{ObjectType: 'S', Name: "tandem_shim_ckept_2"}},
		{&pgproto3.Close{ObjectType: 'P', Name: "tandem_shim_begin"}, &pgproto3.Close{ObjectType: 'P', Name: "tandem_shim_cbegin"}},
		{&pgproto3.Close{ObjectType: 'S', Name: "tandem_shi"}, &pgproto3.Close{ObjectType: 'S', Name: "tandem_shi"}},
	}
	for _, c := range cases {
		typ, in := enc(c.in)
		_, want := enc(c.want)
		if got := clientNames(typ, in); string(got) != string(want) {
			t.Errorf("%#v: got %q, want %q", c.in, got, want)
		}
	}
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Close{ObjectType: 'S', Name: "s1"},
	} {
		typ, in := enc(m)
		if n := testing.AllocsPerRun(100, func() { clientNames(typ, in) }); n != 0 {
			t.Errorf("%#v: %v allocations", m, n)
		}
	}
}

// TestReservedNameRefusal: SQL cannot prepare, execute or deallocate a statement named like the
// shim's, which the extended protocol's renaming does not reach.
func TestReservedNameRefusal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql    string
		refuse bool
	}{
		{`PREPARE tandem_shim_kept_1 AS SELECT 1`, true},
		{`prepare TANDEM_SHIM_x (int) AS SELECT $1`, true},
		{`PREPARE "tandem_shim_begin" AS SELECT 1`, true},
		{`PREPARE "TANDEM_SHIM_begin" AS SELECT 1`, false},
		{`EXECUTE tandem_shim_kept_1`, true},
		{`EXECUTE tandem_shim_internal (1, 2)`, true},
		{`DEALLOCATE tandem_shim_kept_1`, true},
		{`DEALLOCATE PREPARE "tandem_shim_kept_1"`, true},
		{`DEALLOCATE ALL`, false},
		{`PREPARE p AS SELECT 'tandem_shim_kept_1'`, false},
		{`EXECUTE p`, false},
		{`SELECT 1; /* x */ EXECUTE tandem_shim_kept_2`, true},
		{`SELECT tandem_shim_x FROM t`, false},
		{`DELETE FROM tandem_shim_x`, false},
		{`DECLARE tandem_shim_internal CURSOR WITH HOLD FOR SELECT 1`, true},
		{`declare "tandem_shim_x" NO SCROLL CURSOR FOR SELECT 1`, true},
		{`DECLARE c CURSOR FOR SELECT tandem_shim_x FROM t`, false},
		{`FETCH tandem_shim_p`, true},
		{`fetch FORWARD 5 FROM "tandem_shim_p"`, true},
		{`MOVE ABSOLUTE -1 IN tandem_shim_internal`, true},
		{`CLOSE tandem_shim_p`, true},
		{`FETCH 1 FROM c`, false},
		{`MOVE LAST IN "TANDEM_SHIM_p"`, false},
		{`CLOSE ALL`, false},
		{`CLOSE c`, false},
	} {
		got := ""
		for _, st := range splitStatements(c.sql) {
			if r := reservedNameRefusal(c.sql, st); r != "" {
				got = r
			}
		}
		if (got != "") != c.refuse {
			t.Errorf("%s: refusal %q, want refused %v", c.sql, got, c.refuse)
		}
	}
}

// TestReservedNamesSQL: through the shim, SQL that names a statement like the shim's is refused
// (42501) instead of running the shim's commit check or failing with 42P05 on its name.
func TestReservedNamesSQL(t *testing.T) {
	t.Parallel()
	_, conn, exec, _ := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	if err := exec(`INSERT INTO items VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`EXECUTE tandem_shim_kept_1`, `PREPARE tandem_shim_kept_1 AS SELECT 41`, `PREPARE tandem_shim_begin AS SELECT 42`, `DEALLOCATE tandem_shim_kept_1`} {
		if err := exec(q); pgCode(err) != "42501" {
			t.Errorf("%s: %v (SQLSTATE %q), want it refused with 42501", q, err, pgCode(err))
		}
		if conn.PgConn().TxStatus() != 'I' {
			exec(`ROLLBACK`)
		}
	}
	if err := exec(`INSERT INTO items VALUES (2, 2)`); err != nil {
		t.Fatal(err)
	}
}
