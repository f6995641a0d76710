package txshim

// DDL that gives rows already in a table values each database computes for itself cannot ship
// as a statement: ALTER TABLE … ADD COLUMN with a default that is not a constant — now(),
// CURRENT_USER, random(), a serial or identity column — evaluates it on the local database
// and again on the peer when the peer runs the statement (DESIGN §5.2 ships decoded row
// changes precisely so that values are not computed twice; neither a table rewrite nor a
// "missing value" is decoded). The shim refuses such a statement when the table has rows,
// inside the client's transaction, which then rolls back (SQLSTATE 0A000), and says how to
// do it instead: add the column without the default, fill it with UPDATE (whose row changes
// ship), then SET DEFAULT.

// ownColumnsSQL lists the columns the session's transaction (and its subtransactions) made or
// changed so far: pg_attribute rows it can see whose xmin is its own xid or a later one (age
// at most 0) — another transaction's rows are visible only once committed, and older.
const ownColumnsSQL = "SELECT COALESCE(pg_catalog.array_agg(a.attrelid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a.attnum::pg_catalog.text), '{}')::pg_catalog.text" +
	" FROM pg_catalog.pg_attribute a WHERE pg_catalog.age(a.xmin) OPERATOR(pg_catalog.<=) 0 AND a.attnum OPERATOR(pg_catalog.>) 0"

// addedDefaultsCheckSQL raises 0A000 when a column the statement just added (one of the
// session's own columns not in before, ownColumnsSQL's answer from before the statement) has a
// default that is not immutable (a function call that is not, CURRENT_TIMESTAMP and its
// kind, nextval) or is an identity column, and its table has rows.
func addedDefaultsCheckSQL(before string) string {
	return `DO $tandem$
DECLARE r record; has_rows boolean;
BEGIN
  FOR r IN SELECT a.attrelid::pg_catalog.regclass AS rel, a.attname
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
    WHERE pg_catalog.age(a.xmin) OPERATOR(pg_catalog.<=) 0 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
      AND a.attgenerated OPERATOR(pg_catalog.=) ''
      AND NOT (a.attrelid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a.attnum::pg_catalog.text) OPERATOR(pg_catalog.=) ANY (` + quoteLiteral(before) + `::pg_catalog.text[])
      AND (a.attidentity OPERATOR(pg_catalog.<>) ''
        OR d.adbin::pg_catalog.text OPERATOR(pg_catalog.~) '\{(SQLVALUEFUNCTION|NEXTVALUEEXPR)'
        OR EXISTS (SELECT FROM pg_catalog.regexp_matches(d.adbin::pg_catalog.text, ':(?:funcid|opfuncid) (\d+)', 'g') m
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) m[1]::pg_catalog.oid WHERE p.provolatile OPERATOR(pg_catalog.<>) 'i'))
  LOOP
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)', r.rel) INTO has_rows;
    IF has_rows THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: column %I of %s would get, in the rows already there, a value each database computes for itself (its default is not a constant)', r.attname, r.rel),
        HINT = 'Add the column without the default, fill it with UPDATE (its row changes reach both databases), then ALTER COLUMN … SET DEFAULT.';
    END IF;
  END LOOP;
END
$tandem$`
}
