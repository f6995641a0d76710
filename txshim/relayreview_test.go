package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRelayReviewCompare is TestExtProtoCompare's comparison for more shapes real drivers send:
// several Syncs in one write, errors mid-pipeline, Describe and Close, row limits, COPY TO,
// savepoints, statements that cannot run in a block, LISTEN/NOTIFY and session resets.
func TestRelayReviewCompare(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	ins := func(tb string, id int) string { return fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v%d')", tb, id, id) }
	sel := func(tb string) string { return "SELECT id FROM " + tb + " ORDER BY id" }
	copyData := func(rows ...string) []pgproto3.FrontendMessage {
		var m []pgproto3.FrontendMessage
		for _, r := range rows {
			m = append(m, &pgproto3.CopyData{Data: []byte(r + "\n")})
		}
		return m
	}
	join := func(steps ...xstep) xstep {
		var m []pgproto3.FrontendMessage
		for _, s := range steps {
			m = append(m, s.msgs...)
		}
		return xstep{msgs: m, until: ""}
	}
	var procTable string
	cases := []xcase{
		{"three syncs, middle fails", func(tb string) []xstep {
			return []xstep{join(xpipe(ins(tb, 1)), xpipe(ins(tb, 2), ins(tb, 1), ins(tb, 3)), xpipe(ins(tb, 4))), xq(sel(tb))}
		}},
		{"three syncs in a block, middle fails", func(tb string) []xstep {
			return []xstep{join(xpipe("BEGIN", ins(tb, 1)), xpipe(ins(tb, 2), ins(tb, 1), ins(tb, 3)), xpipe(ins(tb, 4)), xpipe("ROLLBACK"), xpipe(ins(tb, 5))), xq(sel(tb))}
		}},
		{"three syncs in a block, savepoint recovers", func(tb string) []xstep {
			return []xstep{join(xpipe("BEGIN", ins(tb, 1), "SAVEPOINT a"), xpipe(ins(tb, 2), ins(tb, 1), ins(tb, 3)), xpipe("ROLLBACK TO a", ins(tb, 4)), xpipe("COMMIT")), xq(sel(tb))}
		}},
		{"error then describe and close ignored", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "s1", Query: ins(tb, 1)}, "BEGIN", "SELECT 1/0", &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xpipe("ROLLBACK"), xmsgs("Z", &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"implicit error then describe and close ignored", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "s1", Query: ins(tb, 1)}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, "SELECT 1/0", &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"row limit read outside a block, portal gone after sync", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2) + ";" + ins(tb, 3)),
				xmsgs("Z", &pgproto3.Parse{Query: sel(tb)}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})}
		}},
		{"row limit read then write in one request", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2) + ";" + ins(tb, 3)),
				xmsgs("Z", &pgproto3.Parse{Query: sel(tb)}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, ins(tb, 4), &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"row limit read, write, then portal in next request", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2) + ";" + ins(tb, 3)),
				xmsgs("Z", &pgproto3.Parse{Query: sel(tb)}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, ins(tb, 4), &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"row limit read in a block across syncs, close portal", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2) + ";" + ins(tb, 3)),
				xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: sel(tb)}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, ins(tb, 4), &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Close{ObjectType: 'P', Name: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}),
				xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"row limit read in a block, commit through the portal's transaction", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2) + ";" + ins(tb, 3)),
				xmsgs("Z", "BEGIN", ins(tb, 5), &pgproto3.Parse{Query: sel(tb)}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 2}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, "COMMIT", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"row limit returning, implicit, then next request", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES (1,'a'),(2,'b'),(3,'c') RETURNING id"}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"row limit returning, block, rest after sync", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES (1,'a'),(2,'b'),(3,'c') RETURNING id"}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{}), xq("COMMIT"), xq(sel(tb))}
		}},
		{"begin and commit as named statements across requests", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "b", Query: "BEGIN"}, &pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Parse{Name: "r", Query: "ROLLBACK"}, &pgproto3.Parse{Name: "i", Query: "INSERT INTO " + tb + " VALUES ($1::int, 'n')"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "i", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "i", Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "i", Parameters: [][]byte{[]byte("3")}}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "r"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "i", Parameters: [][]byte{[]byte("4")}}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xq(sel(tb))}
		}},
		{"sql prepare and execute of commit", func(tb string) []xstep {
			return []xstep{xq("PREPARE pc AS COMMIT"), xq("BEGIN; " + ins(tb, 1)), xq("EXECUTE pc"), xq(sel(tb))}
		}},
		{"copy to stdout", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2)), xq("COPY " + tb + " TO STDOUT"), xq("BEGIN; " + ins(tb, 3) + "; COPY " + tb + " TO STDOUT; COMMIT"), xpipe("COPY " + tb + " TO STDOUT"), xq(sel(tb))}
		}},
		{"copy returning to stdout", func(tb string) []xstep {
			return []xstep{xq("COPY (INSERT INTO " + tb + " VALUES (1,'a'),(2,'b') RETURNING id) TO STDOUT"), xpipe("COPY (DELETE FROM " + tb + " WHERE id = 1 RETURNING id) TO STDOUT"), xq(sel(tb))}
		}},
		{"copy in a block with a savepoint rolled back", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; SAVEPOINT a"), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyFail{Message: "no"}),
				xq("ROLLBACK TO a"), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("3\tb"), &pgproto3.CopyDone{}), xq("SAVEPOINT b"),
				xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("4\tc"), &pgproto3.CopyDone{}), xq("ROLLBACK TO b; COMMIT"), xq(sel(tb))}
		}},
		{"copy bad row implicit", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("1\ta", "x\tb"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"copy in multi-statement with write before", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: ins(tb, 1) + "; COPY " + tb + " FROM STDIN; " + ins(tb, 3)}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"copy fail in multi-statement with write before", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: ins(tb, 1) + "; COPY " + tb + " FROM STDIN; " + ins(tb, 3)}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyFail{Message: "nope"}), xq(sel(tb))}
		}},
		{"multi-statement writes, commit, begin, savepoints", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; COMMIT; BEGIN; " + ins(tb, 2) + "; SAVEPOINT a; " + ins(tb, 3) + "; ROLLBACK TO a; " + ins(tb, 4) + "; COMMIT; " + ins(tb, 5)), xq(sel(tb))}
		}},
		{"nested savepoints", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; SAVEPOINT a; " + ins(tb, 2) + "; SAVEPOINT b; " + ins(tb, 3) + "; RELEASE b; " + ins(tb, 6) + "; ROLLBACK TO a; " + ins(tb, 4) + "; SAVEPOINT c; " + ins(tb, 5) + "; RELEASE c; COMMIT"), xq(sel(tb))}
		}},
		{"savepoint after error, psql on_error_rollback style", func(tb string) []xstep {
			return []xstep{xq("BEGIN"), xq("SAVEPOINT pg_psql_temporary_savepoint"), xq(ins(tb, 1)), xq("RELEASE pg_psql_temporary_savepoint"),
				xq("SAVEPOINT pg_psql_temporary_savepoint"), xq(ins(tb, 1)), xq("ROLLBACK TO pg_psql_temporary_savepoint"),
				xq("SAVEPOINT pg_psql_temporary_savepoint"), xq(ins(tb, 2)), xq("RELEASE pg_psql_temporary_savepoint"), xq("COMMIT"), xq(sel(tb))}
		}},
		{"savepoint rolled back, update and delete", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2)), xpipe("BEGIN", "SAVEPOINT a", "UPDATE "+tb+" SET v = 'up'", "DELETE FROM "+tb+" WHERE id = 1", "ROLLBACK TO SAVEPOINT a", "UPDATE "+tb+" SET v = 'kept' WHERE id = 2", "RELEASE SAVEPOINT a", "COMMIT"), xq("SELECT id, v FROM " + tb + " ORDER BY id")}
		}},
		{"only rolled back savepoint wrote", func(tb string) []xstep {
			return []xstep{xq("BEGIN; SAVEPOINT a; " + ins(tb, 1) + "; ROLLBACK TO a; COMMIT"), xpipe("BEGIN", "SAVEPOINT a", ins(tb, 2), "ROLLBACK TO a", "COMMIT"), xq(ins(tb, 3)), xq(sel(tb))}
		}},
		{"vacuum in a block and in multi-statement", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; VACUUM " + tb), xq("ROLLBACK"), xq("BEGIN"), xq("VACUUM " + tb), xq("ROLLBACK"), xq("VACUUM " + tb + "; " + ins(tb, 2)), xq(ins(tb, 3) + "; VACUUM " + tb), xq("VACUUM " + tb), xq(sel(tb))}
		}},
		{"vacuum ext in a block", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "VACUUM "+tb), xpipe("ROLLBACK"), xpipe("VACUUM " + tb), xpipe("VACUUM "+tb, "SELECT 1"), xq(sel(tb))}
		}},
		{"create database", func(tb string) []xstep {
			db := tb + "_db"
			return []xstep{xq("BEGIN; CREATE DATABASE " + db), xq("ROLLBACK"), xq(ins(tb, 1) + "; CREATE DATABASE " + db), xpipe(ins(tb, 2), "CREATE DATABASE "+db), xq("CREATE DATABASE " + db), xq("DROP DATABASE " + db), xpipe("CREATE DATABASE " + db), xpipe("DROP DATABASE " + db), xq(sel(tb))}
		}},
		{"create index concurrently", func(tb string) []xstep {
			return []xstep{xq("BEGIN; CREATE INDEX CONCURRENTLY " + tb + "_i ON " + tb + " (v)"), xq("ROLLBACK"), xq(ins(tb, 1) + "; CREATE INDEX CONCURRENTLY " + tb + "_i ON " + tb + " (v)"),
				xq("CREATE INDEX CONCURRENTLY " + tb + "_i ON " + tb + " (v)"), xq("DROP INDEX CONCURRENTLY " + tb + "_i"), xq(sel(tb))}
		}},
		{"alter system and discard all in a block", func(tb string) []xstep {
			return []xstep{xq("BEGIN; DISCARD ALL"), xq("ROLLBACK"), xq(ins(tb, 1) + "; DISCARD ALL"), xpipe(ins(tb, 2), "DISCARD ALL"), xq("BEGIN"), xpipe("DISCARD ALL"), xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"set, reset, discard", func(tb string) []xstep {
			return []xstep{xq("SET application_name = 'x1'"), xq("BEGIN; SET application_name = 'x2'; " + ins(tb, 1) + "; ROLLBACK"), xq("SHOW application_name"),
				xq("BEGIN; SET LOCAL application_name = 'x3'; " + ins(tb, 2) + "; COMMIT"), xq("SHOW application_name"),
				xpipe("SET application_name = 'x4'", ins(tb, 3)), xq("SHOW application_name"),
				xq("RESET application_name"), xq("SHOW application_name"), xq("SET application_name = 'x5'; " + ins(tb, 4)), xq("DISCARD ALL"), xq("SHOW application_name"),
				xpipe("RESET ALL"), xq("SHOW application_name"), xq(sel(tb))}
		}},
		{"set then error in implicit", func(tb string) []xstep {
			return []xstep{xq("SET application_name = 'x1'; " + ins(tb, 1) + "; SELECT 1/0"), xq("SHOW application_name"), xpipe("SET application_name = 'x2'", ins(tb, 2), "SELECT 1/0"), xq("SHOW application_name"), xq(sel(tb))}
		}},
		{"listen notify", func(tb string) []xstep {
			return []xstep{xq("LISTEN " + tb), xq("BEGIN; " + ins(tb, 1) + "; NOTIFY " + tb + ", 'a'; COMMIT"), xq(ins(tb, 2) + "; NOTIFY " + tb + ", 'b'"),
				xpipe(ins(tb, 3), "NOTIFY "+tb+", 'c'"), xq("BEGIN; NOTIFY " + tb + ", 'd'; ROLLBACK"), xq("SELECT pg_notify('" + tb + "', 'e')"), xq("UNLISTEN *"), xq("NOTIFY " + tb), xq(sel(tb))}
		}},
		{"status bytes", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN"), xmsgs("Z", &pgproto3.Sync{}), xpipe(ins(tb, 1)), xpipe("SELECT 1/0"), xmsgs("Z", &pgproto3.Sync{}), xq("SELECT 1"), xq("ROLLBACK"),
				xq("BEGIN; " + ins(tb, 2) + "; SELECT 1/0"), xq("ROLLBACK"), xq(ins(tb, 3) + "; BEGIN"), xq("COMMIT"), xq(sel(tb))}
		}},
		{"describe portal and statement before execute, implicit write", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "w", Query: "INSERT INTO " + tb + " VALUES ($1::int, 'd') RETURNING id, v"}, &pgproto3.Describe{ObjectType: 'S', Name: "w"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "w", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Close{ObjectType: 'S', Name: "w"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "w", Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"flush-only pipeline then sync, pgx style", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Parse{Name: "w", Query: "INSERT INTO " + tb + " VALUES ($1::int, 'd')"}, &pgproto3.Describe{ObjectType: 'S', Name: "w"}, &pgproto3.Flush{}),
				xmsgs("Z", &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "w", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "w", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "w", Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"sql prepared write bound through the protocol", func(tb string) []xstep {
			return []xstep{xq("PREPARE pw(int) AS INSERT INTO " + tb + " VALUES ($1, 'p')"), xmsgs("Z", &pgproto3.Bind{PreparedStatement: "pw", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{PreparedStatement: "pw", Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, "SELECT 1/0", &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Describe{ObjectType: 'S', Name: "pw"}, &pgproto3.Close{ObjectType: 'S', Name: "pw"}, &pgproto3.Sync{}), xq("EXECUTE pw(3)"), xq(sel(tb))}
		}},
		{"protocol commit run by sql execute", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "pc", Query: "COMMIT"}, &pgproto3.Parse{Name: "pi", Query: "INSERT INTO " + tb + " VALUES ($1::int, 'q')"}, &pgproto3.Sync{}),
				xq("BEGIN; EXECUTE pi(1); EXECUTE pc"), xq("SELECT 1"), xq("ROLLBACK"), xq("EXECUTE pi(2)"), xq("EXECUTE pi(3); SELECT 1/0"), xq(sel(tb))}
		}},
		{"commit and chain in a failed block", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; SELECT 1/0"), xq("COMMIT AND CHAIN"), xq(ins(tb, 2)), xq("COMMIT"), xpipe("BEGIN", ins(tb, 3), "SELECT 1/0"), xpipe("ROLLBACK AND CHAIN", ins(tb, 4), "COMMIT"), xq(sel(tb))}
		}},
		{"read only transactions", func(tb string) []xstep {
			return []xstep{xq("BEGIN READ ONLY; " + ins(tb, 1)), xq("ROLLBACK"), xq("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"), xq(ins(tb, 2)), xpipe(ins(tb, 3)),
				xq("BEGIN READ WRITE; " + ins(tb, 4) + "; COMMIT"), xq("SET default_transaction_read_only = off"), xq(ins(tb, 5)),
				xq("BEGIN; SET TRANSACTION READ ONLY; " + ins(tb, 6)), xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"open block left at disconnect", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; COMMIT; BEGIN; " + ins(tb, 2)), xmsgs("-", &pgproto3.Terminate{})}
		}},
		{"serializable write skew", func(tb string) []xstep {
			return []xstep{xq("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM " + tb + "; " + ins(tb, 1) + "; COMMIT"), xq(sel(tb))}
		}},
		{"cursor in a write block", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2)), xq("BEGIN; DECLARE c CURSOR FOR " + sel(tb) + "; " + ins(tb, 3)),
				xmsgs("Z", &pgproto3.Execute{Portal: "c", MaxRows: 1}, &pgproto3.Sync{}), xq("FETCH ALL c"), xq("COMMIT"), xq("FETCH c"), xq(sel(tb))}
		}},
		{"with hold cursor across commit", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + ";" + ins(tb, 2)), xq("BEGIN; " + ins(tb, 3) + "; DECLARE c CURSOR WITH HOLD FOR " + sel(tb) + "; COMMIT"), xq("FETCH ALL c"), xq("CLOSE c"), xq(sel(tb))}
		}},
		{"implicit write with lock and declare in one query", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; LOCK " + tb + "; " + ins(tb, 2)), xq("DECLARE c CURSOR FOR SELECT 1; " + ins(tb, 3)), xq(sel(tb))}
		}},
		{"empty queries and syncs between writes", func(tb string) []xstep {
			return []xstep{join(xmsgs("", &pgproto3.Sync{}), xpipe(ins(tb, 1)), xmsgs("", &pgproto3.Sync{}, &pgproto3.Query{String: ""}), xpipe(""), xpipe(ins(tb, 2))), xq(sel(tb))}
		}},
		{"parse error pipeline then writes", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: ins(tb, 1)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Parse{Query: "INSRT bad"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"unnamed statement reused after write request", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES ($1::int, 'u')"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Bind{Parameters: [][]byte{[]byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", "BEGIN", &pgproto3.Sync{}), xmsgs("Z", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES ($1::int, 'u')"}, &pgproto3.Sync{}), xmsgs("Z", &pgproto3.Bind{Parameters: [][]byte{[]byte("3")}}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq("COMMIT"), xq(sel(tb))}
		}},
		{"copy between begin and commit in one query", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "BEGIN; " + ins(tb, 1) + "; COPY " + tb + " FROM STDIN; COMMIT; " + ins(tb, 3)}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"copy fail between begin and commit in one query", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "BEGIN; " + ins(tb, 1) + "; COPY " + tb + " FROM STDIN; COMMIT; " + ins(tb, 3)}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyFail{Message: "no"}), xq("SELECT 1"), xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"implicit copy then commit in one query", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: ins(tb, 1) + "; COPY " + tb + " FROM STDIN; COMMIT; " + ins(tb, 3)}), xmsgs("Z", copyData("2\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"two copies in one query", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN; COPY " + tb + " FROM STDIN; " + ins(tb, 5)}), xmsgs("GZ", copyData("2\ta"), &pgproto3.CopyDone{}), xmsgs("Z", copyData("3\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"two copies in one query, second fails", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN; COPY " + tb + " FROM STDIN; " + ins(tb, 5)}), xmsgs("GZ", copyData("2\ta"), &pgproto3.CopyDone{}), xmsgs("Z", copyData("3\ta"), &pgproto3.CopyFail{Message: "x"}), xq(sel(tb))}
		}},
		{"copy out then copy in after commit in one query", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1)), xmsgs("GZ", &pgproto3.Query{String: "BEGIN; COPY " + tb + " TO STDOUT; " + ins(tb, 2) + "; COMMIT; COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("3\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"copy in then commit outside block", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN; COMMIT"}), xmsgs("Z", copyData("3\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"copy in, savepoint, rollback to, in one query", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "BEGIN; SAVEPOINT a; COPY " + tb + " FROM STDIN; ROLLBACK TO a; " + ins(tb, 1) + "; COMMIT"}), xmsgs("Z", copyData("3\ta"), &pgproto3.CopyDone{}), xq(sel(tb))}
		}},
		{"parse of commit skipped after an error, name reused", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", "SELECT 1/0", &pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Sync{}), xq("ROLLBACK"),
				xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq("ROLLBACK"),
				xmsgs("Z", &pgproto3.Parse{Name: "c", Query: ins(tb, 2)}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"sql deallocate in a rolled back block", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "k", Query: "COMMIT"}, &pgproto3.Sync{}), xq("BEGIN; DEALLOCATE k; ROLLBACK"),
				xq("BEGIN; " + ins(tb, 1)), xmsgs("Z", &pgproto3.Bind{PreparedStatement: "k"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"sql prepare in a rolled back block", func(tb string) []xstep {
			return []xstep{xq("BEGIN; PREPARE sp AS " + ins(tb, 1) + "; ROLLBACK"), xq("EXECUTE sp"), xmsgs("Z", &pgproto3.Bind{PreparedStatement: "sp"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq(sel(tb))}
		}},
		{"close of commit statement skipped after error", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Name: "k", Query: "COMMIT"}, &pgproto3.Sync{}), xmsgs("Z", "SELECT 1/0", &pgproto3.Close{ObjectType: 'S', Name: "k"}, &pgproto3.Sync{}),
				xq("BEGIN; " + ins(tb, 1)), xmsgs("Z", &pgproto3.Bind{PreparedStatement: "k"}, &pgproto3.Execute{}, &pgproto3.Sync{}), xq("ROLLBACK"), xq(sel(tb))}
		}},
		{"statement timeout in an implicit pipeline", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xpipe(ins(tb, 1), slow, ins(tb, 3)), xpipe(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout in a block pipeline", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xpipe("BEGIN", ins(tb, 1), slow, ins(tb, 3), "COMMIT"), xq("COMMIT"), xpipe(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout after commit in a query", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xq("BEGIN; " + ins(tb, 1) + "; COMMIT; " + ins(tb, 2) + "; " + slow), xq(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout before commit in a query", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xq(ins(tb, 1) + "; " + slow + "; COMMIT; " + ins(tb, 2)), xq(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout in a simple implicit write", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xq(slow), xq(ins(tb, 1) + "; " + slow), xq(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout in a pipeline after flush", func(tb string) []xstep {
			slow := "INSERT INTO " + tb + " SELECT 9, pg_sleep(1)::text"
			return []xstep{xq("SET statement_timeout = '300ms'"), xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", slow, ins(tb, 3), &pgproto3.Sync{}), xpipe(ins(tb, 4)), xq(sel(tb))}
		}},
		{"statement timeout mid copy in a block", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; SET LOCAL statement_timeout = '300ms'"), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN WHERE pg_sleep(0.5) IS NOT NULL"}), xmsgs("Z", copyData("2\ta", "3\tb"), &pgproto3.CopyDone{}), xq("COMMIT"), xq(sel(tb))}
		}},
		{"lock timeout in a pipeline", func(tb string) []xstep {
			return []xstep{xq("SET lock_timeout = '200ms'"), xpipe(ins(tb, 1), "SELECT pg_advisory_xact_lock(1)", ins(tb, 2)), xq(sel(tb))}
		}},
		{"idle in transaction timeout after flush", func(tb string) []xstep {
			// The timeout ends the session 300 ms after the query's ReadyForQuery: the steps
			// that send nothing wait for its error, then the connection's end (a read until
			// silence ends soon once nothing is owed; a FATAL error owes the end).
			return []xstep{xq("SET idle_in_transaction_session_timeout = '300ms'"), xmsgs("", "BEGIN", ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", &pgproto3.Sync{}), xmsgs("", &pgproto3.Query{String: "SELECT pg_sleep(1)"}), xmsgs("E"), xmsgs("")}
		}},
		{"vacuum after commit in one query", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; COMMIT; VACUUM " + tb), xq("BEGIN; " + ins(tb, 2) + "; COMMIT; VACUUM " + tb), xq(ins(tb, 3) + "; COMMIT; " + ins(tb, 4) + "; VACUUM " + tb),
				xq("VACUUM " + tb + "; COMMIT; " + ins(tb, 5)), xq("BEGIN; " + ins(tb, 6) + "; COMMIT; VACUUM " + tb + "; " + ins(tb, 7)), xq(sel(tb))}
		}},
		{"vacuum after commit in one pipeline", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "COMMIT", "VACUUM "+tb), xpipe("BEGIN", ins(tb, 2), "COMMIT", "VACUUM "+tb), xpipe(ins(tb, 3), "COMMIT", ins(tb, 4), "VACUUM "+tb),
				xpipe("VACUUM "+tb, "COMMIT", ins(tb, 5)), xpipe("BEGIN", ins(tb, 6), "COMMIT", "VACUUM "+tb, ins(tb, 7)), xpipe(ins(tb, 8), "VACUUM "+tb, ins(tb, 9)), xq(sel(tb))}
		}},
		{"create index concurrently after commit", func(tb string) []xstep {
			ci := "CREATE INDEX CONCURRENTLY " + tb + "_ci ON " + tb + " (v)"
			return []xstep{xq(ins(tb, 1) + "; COMMIT; " + ci), xpipe(ins(tb, 2), "COMMIT", ci), xq(sel(tb)), xq("SELECT count(*) FROM pg_indexes WHERE indexname = '" + tb + "_ci'")}
		}},
		{"block-only and no-block statements alone before a commit", func(tb string) []xstep {
			return []xstep{xq("LOCK " + tb + "; COMMIT; " + ins(tb, 1)), xq("DECLARE c CURSOR FOR SELECT 1; COMMIT; " + ins(tb, 2)),
				xq(ins(tb, 3) + "; COMMIT; VACUUM " + tb + "; COMMIT; " + ins(tb, 4)), xq("BEGIN; " + ins(tb, 5) + "; COMMIT; LOCK " + tb + "; COMMIT"),
				xq("CREATE INDEX CONCURRENTLY " + tb + "_x ON " + tb + " (v); COMMIT; " + ins(tb, 6)), xq("SELECT count(*) FROM pg_indexes WHERE indexname = '" + tb + "_x'"),
				xq("CREATE DATABASE " + tb + "_d; COMMIT"), xq("SELECT count(*) FROM pg_database WHERE datname = '" + tb + "_d'"), xq(sel(tb))}
		}},
		{"lock and declare after a split, then writes", func(tb string) []xstep {
			return []xstep{xq("ROLLBACK; LOCK " + tb + "; " + ins(tb, 1)), xq("COMMIT; LOCK " + tb + "; " + ins(tb, 2)),
				xq("DECLARE c CURSOR FOR SELECT 1; " + ins(tb, 3) + "; FETCH c"), xq("BEGIN; " + ins(tb, 4) + "; COMMIT; DECLARE c CURSOR FOR SELECT 2; " + ins(tb, 5) + "; FETCH c"),
				xq("LOCK " + tb + "; " + ins(tb, 6) + "; SELECT count(*) FROM pg_locks WHERE relation = '" + tb + "'::regclass AND mode = 'AccessExclusiveLock' AND pid = pg_backend_pid()"),
				xq(sel(tb))}
		}},
		{"procedure that commits before a commit in one query", func(tb string) []xstep {
			return []xstep{xq("CALL rr_commitproc(); COMMIT; " + ins(tb, 1)), xq("DO $$BEGIN COMMIT; END$$; COMMIT; " + ins(tb, 2)), xq(ins(tb, 3) + "; COMMIT; CALL rr_commitproc(); COMMIT; " + ins(tb, 4)),
				xq(ins(tb, 5) + "; COMMIT; CALL rr_commitproc()"), xq(ins(tb, 6) + "; COMMIT; DO $$BEGIN COMMIT; END$$"), xq("CALL rr_insproc(7); COMMIT; SELECT 1/0"), xq("CALL rr_insproc(8); COMMIT"),
				xpipe("CALL rr_commitproc()", "COMMIT", ins(tb, 11)), xpipe(ins(tb, 12), "CALL rr_commitproc()", "COMMIT", ins(tb, 13)), xpipe("DO $$BEGIN COMMIT; END$$", "COMMIT", ins(tb, 14)),
				xpipe("CALL rr_insproc(15)", "COMMIT", "SELECT 1/0"), xpipe("LOCK "+tb, "COMMIT", ins(tb, 16)), xpipe("SET LOCAL work_mem = '5MB'", "COMMIT", ins(tb, 17)), xq(sel(tb))}
		}},
		{"transaction settings alone before a commit", func(tb string) []xstep {
			return []xstep{xq("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; COMMIT; SHOW transaction_isolation"), xq("SET LOCAL work_mem = '7MB'; COMMIT; SHOW work_mem"),
				xq("SET CONSTRAINTS ALL DEFERRED; COMMIT; " + ins(tb, 1)), xq(ins(tb, 2) + "; COMMIT; SET LOCAL work_mem = '8MB'; COMMIT; SHOW work_mem"),
				xq("SET LOCAL work_mem = '9MB'; COMMIT AND CHAIN; SHOW work_mem"), xq("SELECT 1; COMMIT AND CHAIN; " + ins(tb, 3)), xq(sel(tb))}
		}},
		{"savepoint alone before a commit", func(tb string) []xstep {
			return []xstep{xq("SAVEPOINT a; COMMIT; " + ins(tb, 1)), xq("RELEASE a; COMMIT; " + ins(tb, 2)), xq(ins(tb, 3) + "; COMMIT; SAVEPOINT b; COMMIT; " + ins(tb, 4)), xq(sel(tb))}
		}},
		{"copy data then gone", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 9)), xmsgs("-", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}, copyData("1\ta", "2\tb"))}
		}},
		{"statements alone after a write's rollback", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; ROLLBACK; VACUUM " + tb), xq(ins(tb, 2) + "; ROLLBACK; LOCK " + tb + "; " + ins(tb, 3)), xq(ins(tb, 4) + "; ROLLBACK; SET LOCAL work_mem = '5MB'"),
				xq("LOCK " + tb + "; END; " + ins(tb, 5)), xq(ins(tb, 6) + "; ROLLBACK; LOCK " + tb), xq(ins(tb, 7) + "; ABORT; CALL rr_commitproc()"), xq(sel(tb))}
		}},
	}
	tables := make([]string, len(cases))
	for i := range cases {
		tables[i] = fmt.Sprintf("rr_%d", i)
		ddl := fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text)", tables[i])
		o.both(t, ddl)
	}
	for i, tc := range cases {
		if strings.HasPrefix(tc.name, "procedure that commits") {
			procTable = tables[i]
		}
	}
	o.both(t, `CREATE PROCEDURE rr_commitproc() LANGUAGE plpgsql AS $$BEGIN COMMIT; END$$`,
		`CREATE PROCEDURE rr_insproc(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO `+procTable+` VALUES (i, 'p'); END$$`)
	before := e.shim.Stats()
	o.compareCases(t, cases, tables)
	e.settle(t, before)
	for i, tc := range cases {
		o.sameRows(t, tc.name, contentsSQL(tables[i]))
	}
}
