package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// schemaSQL creates Tandem's own schema (DESIGN §5.2). tandem.ddl is published (the apply side
// runs each stmt in order with the row changes, under the settings its row took from the
// session that sent it: the schemas that session searched, "$user" resolved, at that moment,
// the TimeZone and DateStyle its date and time literals are read in, and the settings that
// decide how a value of one type becomes text for a conversion without USING: IntervalStyle,
// extra_float_digits, bytea_output, lc_monetary, xmloption — and xmlbinary, by which
// xmlelement writes a bytea, array_nulls, by which an
// array literal's NULL is read, transform_null_equals, by which x = NULL is parsed,
// timezone_abbreviations, by which a literal's zone abbreviation is read,
// check_function_bodies, off for a function made before the tables its body reads,
// password_encryption, by which a role's password is hashed, default_text_search_config, by
// which to_tsvector and to_tsquery without a configuration read a text, default_tablespace,
// where a table or an index is put, plpgsql.extra_errors, by which a function's body may be
// refused, quote_all_identifiers, by which quote_ident quotes a name, and the role the client
// set, SET
// ROLE, which owns what the statement makes);
// tandem.state and tandem.decisions are not:
// each database keeps its own term record and its own decision rows. A decision row's lsn is
// the end of the transaction in its source's stream (prune.go); rows of earlier versions have
// none.
//
// Two helper functions let one pipelined apply round trip refuse cleanly: check_term is the
// §3 fence (given a master, the same term held by another master is refused too, see
// WriteTermRecord; the one-argument form stays for shims of earlier versions); expect_one
// turns an UPDATE/DELETE that missed (divergence) into an SQL error before PREPARE
// TRANSACTION runs, so a diverged transaction is never prepared on the peer. catalog_text is a
// value's text as its output function writes it under search_path pg_catalog and
// quote_all_identifiers off, the decoder's walsender's (decode.go): a reg* value (regclass,
// regtype, …) names what is not in pg_catalog schema-qualified there (each name quoted only
// where it must be, whatever the database's default), but after the apply session's own
// search_path in format('%s'),
// which the apply compares the sent text with (matchRow, kept; peerCol.pathText). Only the
// function's call sets the path: the apply session's statements keep the peer's, by which
// user types' and extensions' operators (citext's "=") are found.
const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS tandem;
CREATE TABLE IF NOT EXISTS tandem.state (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  term bigint NOT NULL, master text NOT NULL, peer_synced boolean NOT NULL);
CREATE TABLE IF NOT EXISTS tandem.decisions (gid text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
-- Run again, install must not lock tables a prepared transaction may hold (an applied copy
-- its decision row, DDL its tandem.ddl row) for as long as it stays in doubt: ALTER TABLE ...
-- IF NOT EXISTS and CREATE INDEX IF NOT EXISTS lock their table first and look after. So they
-- run only when something is missing (TestInstallAgainWithPreparedApply).
DO $u$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'tandem.decisions'::pg_catalog.regclass
                 AND attname = 'lsn' AND NOT attisdropped) THEN
    ALTER TABLE tandem.decisions ADD COLUMN IF NOT EXISTS lsn pg_lsn;
  END IF;
  IF pg_catalog.to_regclass('tandem.decisions_at') IS NULL THEN
    CREATE INDEX IF NOT EXISTS decisions_at ON tandem.decisions (at);
  END IF;
END $u$;
-- The shim's commit check reads the term record in the client's transaction, under the role
-- the client may have set (SET ROLE): every role may read it (a term and a site name), and
-- nothing else of the schema.
GRANT USAGE ON SCHEMA tandem TO PUBLIC;
GRANT SELECT ON tandem.state TO PUBLIC;
CREATE TABLE IF NOT EXISTS tandem.ddl (id bigserial PRIMARY KEY, stmt text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE OR REPLACE FUNCTION tandem.ddl_search_path() RETURNS pg_catalog.text
LANGUAGE plpgsql STABLE AS $f$
DECLARE
  path pg_catalog.text := pg_catalog.current_setting('search_path');
  s pg_catalog.text;
  schemas pg_catalog.text;
  r pg_catalog.text := NULLIF(NULLIF(pg_catalog.current_setting('tandem.role', true), 'none'), '');
  prev pg_catalog.text := pg_catalog.current_setting('role');
  cur pg_catalog.text[];
BEGIN
  -- With pg_temp first, current_schemas would make the session's temporary schema, and a
  -- transaction that did cannot be prepared: the setting as it is says the same there.
  IF path OPERATOR(pg_catalog.~*) '^[[:space:]]*"?pg_temp"?[[:space:]]*(,|$)' THEN
    RETURN path;
  END IF;
  -- The row goes in as the session's user (asSessionUserSQL), the statement runs under the
  -- role the client set (tandem.role): "$user", and the schemas it may use, are that role's.
  IF r IS NOT NULL AND r OPERATOR(pg_catalog.<>) CURRENT_USER::pg_catalog.text AND EXISTS (SELECT FROM pg_catalog.pg_roles
      WHERE rolname OPERATOR(pg_catalog.=) r AND pg_catalog.pg_has_role(oid, 'MEMBER')) THEN
    PERFORM pg_catalog.set_config('role', r, true);
    cur := pg_catalog.current_schemas(false)::pg_catalog.text[];
    PERFORM pg_catalog.set_config('role', prev, true);
  ELSE
    cur := pg_catalog.current_schemas(false)::pg_catalog.text[];
  END IF;
  FOREACH s IN ARRAY cur LOOP
    IF pg_catalog.starts_with(s, 'pg_temp_') THEN
      s := 'pg_temp';
    END IF;
    schemas := pg_catalog.concat_ws(', ', schemas, pg_catalog.quote_ident(s));
  END LOOP;
  RETURN coalesce(schemas, '');
END
$f$;
-- Each column a tandem.ddl row records a setting in, added where missing (as above: only then).
-- Then a DDL transaction prepared and in doubt (its row) holds the table for as long as it stays
-- so: the ALTER TABLE gives up after a moment, naming the prepared transactions, rather than
-- wait without end with every DDL through the shim queued behind its lock
-- (TestInstallUpgradeBesidePreparedDDL).
DO $u$ DECLARE c pg_catalog.text[]; held pg_catalog.text; wait pg_catalog.text := pg_catalog.current_setting('lock_timeout');
BEGIN
  FOREACH c SLICE 1 IN ARRAY ARRAY[
    ['search_path', $$tandem.ddl_search_path()$$],
    ['timezone', $$pg_catalog.current_setting('timezone')$$],
    ['datestyle', $$pg_catalog.current_setting('datestyle')$$],
    ['intervalstyle', $$pg_catalog.current_setting('intervalstyle')$$],
    ['extra_float_digits', $$pg_catalog.current_setting('extra_float_digits')$$],
    ['bytea_output', $$pg_catalog.current_setting('bytea_output')$$],
    ['lc_monetary', $$pg_catalog.current_setting('lc_monetary')$$],
    ['xmloption', $$pg_catalog.current_setting('xmloption')$$],
    ['array_nulls', $$pg_catalog.current_setting('array_nulls')$$],
    ['transform_null_equals', $$pg_catalog.current_setting('transform_null_equals')$$],
    ['timezone_abbreviations', $$pg_catalog.current_setting('timezone_abbreviations')$$],
    ['check_function_bodies', $$pg_catalog.current_setting('check_function_bodies')$$],
    ['password_encryption', $$pg_catalog.current_setting('password_encryption')$$],
    ['xmlbinary', $$pg_catalog.current_setting('xmlbinary')$$],
    ['default_text_search_config', $$pg_catalog.current_setting('default_text_search_config')$$],
    ['default_tablespace', $$pg_catalog.current_setting('default_tablespace')$$],
    ['plpgsql.extra_errors', $$pg_catalog.current_setting('plpgsql.extra_errors', true)$$],
    ['quote_all_identifiers', $$pg_catalog.current_setting('quote_all_identifiers')$$],
    -- The shim inserts the row as the session's user, with the role the client set (if any)
    -- kept in tandem.role (asSessionUserSQL); NULL when it set none.
    ['role', $$NULLIF(NULLIF(pg_catalog.current_setting('tandem.role', true), 'none'), '')$$]] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'tandem.ddl'::pg_catalog.regclass
                   AND attname OPERATOR(pg_catalog.=) c[1] AND NOT attisdropped) THEN
      BEGIN
        PERFORM pg_catalog.set_config('lock_timeout', '5s', true);
        EXECUTE pg_catalog.format('ALTER TABLE tandem.ddl ADD COLUMN IF NOT EXISTS %I text DEFAULT %s', c[1], c[2]);
      EXCEPTION WHEN lock_not_available THEN
        SELECT pg_catalog.string_agg(x.gid, ', ' ORDER BY x.gid) INTO held FROM pg_catalog.pg_prepared_xacts x
        WHERE x.database OPERATOR(pg_catalog.=) pg_catalog.current_database();
        RAISE EXCEPTION USING ERRCODE = '55P03',
          MESSAGE = pg_catalog.format('tandem: cannot add column %s to tandem.ddl: another transaction holds the table%s', c[1],
            CASE WHEN held IS NULL THEN '' ELSE ' (transactions prepared on this database: ' OPERATOR(pg_catalog.||) held OPERATOR(pg_catalog.||) ')' END),
          HINT = 'Let the sidecar finish a transaction left prepared (or COMMIT PREPARED / ROLLBACK PREPARED it by hand), then run install again.';
      END;
    END IF;
  END LOOP;
  PERFORM pg_catalog.set_config('lock_timeout', wait, true);
END $u$;
CREATE OR REPLACE FUNCTION tandem.check_term(txn_term bigint) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE db_term bigint;
BEGIN
  SELECT term INTO db_term FROM tandem.state WHERE id = 1;
  IF db_term IS NOT NULL AND db_term > txn_term THEN
    RAISE EXCEPTION 'tandem: transaction of term % refused: this database is at term %', txn_term, db_term
      USING ERRCODE = '` + sqlstateStaleTerm + `';
  END IF;
END $f$;
CREATE OR REPLACE FUNCTION tandem.check_term(txn_term bigint, txn_master text) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE db_term bigint; db_master text;
BEGIN
  SELECT term, master INTO db_term, db_master FROM tandem.state WHERE id = 1;
  IF db_term IS NOT NULL AND (db_term > txn_term OR (db_term = txn_term AND db_master <> txn_master)) THEN
    RAISE EXCEPTION 'tandem: transaction of term % (master %) refused: this database is at term % (master %)',
      txn_term, txn_master, db_term, db_master USING ERRCODE = '` + sqlstateStaleTerm + `';
  END IF;
END $f$;
CREATE OR REPLACE FUNCTION tandem.catalog_text(v anyelement) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog SET quote_all_identifiers = off AS $f$ SELECT pg_catalog.format('%s', v) $f$;
CREATE OR REPLACE FUNCTION tandem.expect_one(n bigint, what text) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
  IF n <> 1 THEN
    RAISE EXCEPTION 'tandem: divergence: % matched % rows on the peer, want 1', what, n
      USING ERRCODE = '` + sqlstateDivergence + `';
  END IF;
END $f$;
`

// ddlGuardSQL makes the event triggers that keep DDL from bypassing tandem.ddl (DESIGN §5.2).
// The shim records the DDL statements a client sends it; DDL that runs inside another
// statement — a DO block, a function (SELECT make_table()), a procedure (CALL), a trigger —
// the shim cannot see, and the peer would never get it: the next write to what it made or
// changed would fail there. So on a database session of the shim's clients (tandem.client =
// on, which the shim sets in the backend connection's startup packet), DDL is refused with
// SQLSTATE 0A000 at the end of its command — aborting the statement's transaction, so nothing
// of it stays — unless the shim marked it as DDL it records (tandem.ddl, transaction-local,
// set with its tandem.ddl row and reset right after the statement; its own statements that
// do DDL run while it is set) or it concerns temporary objects only (plpgsql functions commonly
// make and drop temporary tables) or a subscription (CREATE/ALTER/DROP SUBSCRIPTION, which
// the shim sends as is: a subscription is not shipped, and some of them act on the publisher
// before their end). Every other session — the peer's apply, install, resync,
// an operator's psql — is left alone. CREATE EVENT TRIGGER needs a superuser (Install checks).
//
// A client may write any setting, tandem.* ones too (SET, set_config, inside a DO block or a
// function), so the guard goes by none of them as they are: the mark is a digest (sha256) of
// the backend, the transaction and the tandem.ddl row under tandem.ddl_key, a random key only
// its owner (install's superuser) reads, made by a trigger on tandem.ddl as the shim's row goes
// in, which the guard binds to the statement at its first command; whether a command runs
// inside another statement it tells from the call stack (PG_CONTEXT), and a client session
// from tandem.client being there at all. A client that can write tandem.ddl (or read
// tandem.ddl_key) gets past it, as it can change Tandem's objects anyway (ownobjects.go).
// Nothing of this is on the commit path: the trigger runs for DDL only.
//
// DDL that runs inside a statement the shim records — an event trigger of the user's, or a
// function the statement calls — is refused the same way when it is on permanent objects: the
// peer's run of the statement need not run it (the apply runs with session_replication_role =
// replica, where such a trigger does not fire; the peer no longer runs the query of CREATE
// TABLE … AS on a published table, ddl_ctas), and the object would be on the local database
// only. Exempt: temporary objects; the script of CREATE and ALTER EXTENSION, which the peer
// runs too; publish_schema's ALTER PUBLICATION, which fires in the apply too; and the shim's
// own DO block that records a command and runs it (afterDDLSQL). A statement the shim records
// is refused too while an event trigger of the user's made ENABLE ALWAYS or ENABLE REPLICA
// would fire for it, or for a command nested in it that the peer runs too (those exempt above):
// it fires in the peer's apply as well, and what it writes there comes on top of the rows
// shipped from here (a table_rewrite one too: ddl_rewrite).
//
// A schema made after install — through the shim (the peer's apply then runs the statement
// too), or straight on a database — is added to the publication as it is made, by an event
// trigger that runs as install's superuser (ADD TABLES IN SCHEMA needs one), in every session:
// else the rows of its tables would never be decoded, and a client told its commit was dual
// would find them missing on the peer after a failover. It is in the same transaction, so the
// rows written after it there are decoded too.
//
// The same install makes two event triggers for the peer's side of CREATE EXTENSION and ALTER
// EXTENSION (… UPDATE), which the shim records like any DDL: an extension's script may make
// tables and fill them (pg_extension_config_dump marks such tables), and those rows are
// decoded from the local database and shipped after the statement's tandem.ddl row, while the
// peer's own run of the statement fills its new tables too — duplicate keys, the apply refused
// and the peer needing resync. As for CREATE TABLE … AS (apply.go, emptyNewTablesSQL), the
// tables the statement made on the peer are emptied right after it (TRUNCATE ONLY, all in one
// statement, so that foreign keys among them do not stand in the way), and the shipped rows
// fill them: the peer holds exactly the local rows, values the script computed included. Only
// the published tables that did not exist before the statement (recorded at its start) are
// emptied; they fire (ENABLE ALWAYS) in sessions with session_replication_role = replica — the
// peer's apply. A script that writes into a published table that was there before it (an
// update script filling a table of the extension's earlier version) cannot ship so: both
// databases write those rows, and emptying the table would lose the rest. The same triggers
// refuse such a statement (0A000) in a client's session on the local database, before it
// commits: at its start they count each published extension table's rows and those of them the
// transaction wrote (xmin its own or later), and at its end a table whose counts changed was
// written by it (an insert or update adds a row of the transaction's, a delete takes one away).
// A concurrent commit to such a table between the two counts may refuse it needlessly: safe.
// The function runs as its owner, install's superuser, so that the counts and the TRUNCATE see
// every row whatever the privileges and row security of the session's user.
const ddlGuardSQL = `
CREATE TABLE IF NOT EXISTS tandem.ddl_key (k text NOT NULL);
REVOKE ALL ON tandem.ddl_key FROM PUBLIC;
INSERT INTO tandem.ddl_key (k) SELECT pg_catalog.gen_random_uuid()::pg_catalog.text OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid()::pg_catalog.text
  WHERE NOT EXISTS (SELECT FROM tandem.ddl_key);
CREATE OR REPLACE FUNCTION tandem.ddl_mark_hash(k pg_catalog.text, what pg_catalog.text) RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS $f$
  SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(k OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) what OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) k, 'UTF8')), 'hex')
$f$;
CREATE OR REPLACE FUNCTION tandem.ddl_mark() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  PERFORM pg_catalog.set_config('tandem.ddl', 'r:' OPERATOR(pg_catalog.||) NEW.id OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
    tandem.ddl_mark_hash((SELECT d.k FROM tandem.ddl_key d LIMIT 1), pg_catalog.concat_ws(':', pg_catalog.pg_backend_pid(),
      pg_catalog.pg_current_xact_id_if_assigned(), NEW.id, 'r')), true),
    pg_catalog.set_config('tandem.ddl_own', tandem.ddl_mark_hash((SELECT d.k FROM tandem.ddl_key d LIMIT 1), pg_catalog.concat_ws(':', pg_catalog.pg_backend_pid(),
      pg_catalog.pg_current_xact_id_if_assigned(), NEW.id, 'o', EXTRACT(epoch FROM pg_catalog.statement_timestamp())::pg_catalog.text)), true);
  RETURN NULL;
END $f$;
CREATE OR REPLACE FUNCTION tandem.ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE
  mark pg_catalog.text := pg_catalog.current_setting('tandem.ddl', true);
  k pg_catalog.text;
  ddl_id pg_catalog.int8;
  txn pg_catalog.text;
  stmt pg_catalog.text := EXTRACT(epoch FROM pg_catalog.statement_timestamp())::pg_catalog.text;
  stack pg_catalog.text;
  top pg_catalog.bool;
  dep pg_catalog.text;
  fn pg_catalog.text;
BEGIN
  -- Every setting below is one the client may write itself (SET, set_config, in a DO block).
  -- tandem.client is set in the startup packet: the client may change its value but never
  -- take it away, so a session that has it at all is a client's (TestDDLGuardForgedSettings).
  IF pg_catalog.current_setting('tandem.client', true) IS NULL THEN
    RETURN;
  END IF;
  -- Whether this command is a statement of the client's own or runs inside another one (a
  -- function, a DO block), which no setting can make it look otherwise: the call stack.
  GET DIAGNOSTICS stack = PG_CONTEXT;
  top := pg_catalog.strpos(stack, E'\n') OPERATOR(pg_catalog.=) 0;
  -- The mark that lets DDL the shim recorded through is no value a client can write: the row
  -- the shim inserts into tandem.ddl makes it (ddl_mark, a trigger), a digest of the backend,
  -- the transaction and the row's id under tandem.ddl_key, which only its owner reads (r:id:...).
  -- The statement's first command binds it to that statement (s:id:..., with its start time),
  -- so that the client, which may read it from inside the statement (CREATE TABLE ... AS
  -- SELECT current_setting(...)), cannot use it in a later one; the row's id comes from it,
  -- not from tandem.ddl_id (TestDDLGuardForgedSettings).
  IF mark OPERATOR(pg_catalog.~) '^[rs]:[0-9]{1,18}:' THEN
    -- Without a key (tandem.ddl_key emptied), every digest is NULL: no mark is one, and the
    -- comparisons below are such that a NULL refuses (TestDDLGuardNoKey).
    SELECT d.k INTO k FROM tandem.ddl_key d LIMIT 1;
    ddl_id := pg_catalog.split_part(mark, ':', 2)::pg_catalog.int8;
    txn := pg_catalog.concat_ws(':', pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id_if_assigned(), ddl_id);
    IF mark OPERATOR(pg_catalog.=) ('r:' OPERATOR(pg_catalog.||) ddl_id OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':r')) THEN
      IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_start' THEN
        PERFORM pg_catalog.set_config('tandem.ddl', 's:' OPERATOR(pg_catalog.||) ddl_id OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
            tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':s:' OPERATOR(pg_catalog.||) stmt), true),
          pg_catalog.set_config('tandem.ddl_depth', '0', true), pg_catalog.set_config('tandem.ddl_temp', '', true),
          pg_catalog.set_config('tandem.ddl_ext', '', true);
      END IF;
    ELSIF mark IS DISTINCT FROM ('s:' OPERATOR(pg_catalog.||) ddl_id OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':s:' OPERATOR(pg_catalog.||) stmt)) THEN
      ddl_id := NULL;
    END IF;
  ELSIF mark OPERATOR(pg_catalog.=) 'on' AND top AND TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['CREATE INDEX', 'DROP INDEX', 'ALTER TABLE']) THEN
    -- The shim's mark for CREATE INDEX, DROP INDEX and ALTER TABLE ... DETACH PARTITION
    -- CONCURRENTLY, which it records once they ran (session.lastPartShipAfter), and which run
    -- in transactions of their own: honoured for a statement the client sent only (which the
    -- shim saw, and records itself when it is no such one), never inside another one.
    RETURN;
  END IF;
  IF ddl_id IS NOT NULL THEN
    -- DDL the shim recorded (ddlMarkSQL). On the session's temporary objects only, the peer
    -- has nothing to run (it lacks them): the record is taken back, a DELETE right behind its
    -- INSERT, which the peer's apply takes for neither. Only on evidence: a dropped object or a
    -- command in pg_temp, none elsewhere (a command PostgreSQL collects nothing for is kept).
    -- Only the statement's own command counts, not one a function it runs does (CREATE TABLE ...
    -- AS SELECT ... FROM f(), f making a temporary table, ends that first): tandem.ddl_depth counts
    -- the commands begun and not ended (TestTempDDLInsideRecordedDDL). A client may write it
    -- (TestDDLGuardForgedDepth): the statement's first command sets it, and a command inside a
    -- function counts as nested whatever it says (top).
    IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_start' THEN
      PERFORM pg_catalog.set_config('tandem.ddl_depth',
        (COALESCE(NULLIF(pg_catalog.current_setting('tandem.ddl_depth', true), ''), '0')::pg_catalog.int4 OPERATOR(pg_catalog.+) 1)::pg_catalog.text, true);
      IF TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['GRANT', 'REVOKE']) THEN
        PERFORM ` + grantStartSQL + `;
      END IF;
      -- The statement's own CREATE or ALTER EXTENSION: the peer runs its script too, with the
      -- commands it runs nested (below). Marked so that no setting a client writes says so.
      IF top AND TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['CREATE EXTENSION', 'ALTER EXTENSION']) THEN
        PERFORM pg_catalog.set_config('tandem.ddl_ext', tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':x:' OPERATOR(pg_catalog.||) stmt), true);
      END IF;
      RETURN;
    END IF;
    -- A command inside a function is not the statement's own whatever tandem.ddl_depth says
    -- (top): one in a ddl_command_start event trigger of the database's own whose name sorts
    -- before tandem_ddl_guard_start even begins before the statement's own command
    -- (TestTempEventTriggerBeforeGuard).
    IF COALESCE(NULLIF(pg_catalog.current_setting('tandem.ddl_depth', true), ''), '1')::pg_catalog.int4 OPERATOR(pg_catalog.>) 1 OR NOT top THEN
      IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_end' THEN
        PERFORM pg_catalog.set_config('tandem.ddl_depth',
          GREATEST(COALESCE(NULLIF(pg_catalog.current_setting('tandem.ddl_depth', true), ''), '0')::pg_catalog.int4 OPERATOR(pg_catalog.-) 1, 0)::pg_catalog.text, true);
      END IF;
      -- A nested command on permanent objects reaches the peer only if the peer's run of the
      -- recorded statement runs it too, which it cannot be sure of: an event trigger of the
      -- user's does not fire in the apply (session_replication_role = replica; one ENABLE
      -- ALWAYS does, and writes its rows there a second time), and the peer no longer runs the
      -- query of CREATE TABLE ... AS (ddl_ctas). It is refused, but in the script of the
      -- statement's own CREATE or ALTER EXTENSION (tandem.ddl_ext), and for publish_schema's
      -- ALTER PUBLICATION of Tandem's publication (fired in the apply too: ENABLE ALWAYS).
      -- Temporary objects only stay allowed (TestNestedDDLEventTrigger, TestNestedDDLInCTAS).
      -- The innermost function on the call stack (the first line is this one's).
      SELECT x.l INTO fn FROM pg_catalog.unnest(pg_catalog.string_to_array(stack, E'\n')) WITH ORDINALITY x(l, i)
      WHERE x.i OPERATOR(pg_catalog.>) 1 AND x.l OPERATOR(pg_catalog.~) '^(PL/pgSQL|SQL) function '
      ORDER BY x.i LIMIT 1;
      IF (CASE TG_EVENT
           WHEN 'sql_drop' THEN EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary)
           ELSE EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE NOT ` + tempCommandSQL + `)
             AND NOT (TG_TAG OPERATOR(pg_catalog.=) 'ALTER PUBLICATION' AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
           WHERE c.objid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT p.oid FROM pg_catalog.pg_publication p WHERE p.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `'
             UNION ALL SELECT pn.oid FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) pn.pnpubid
               WHERE p.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `'
             UNION ALL SELECT pr.oid FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) pr.prpubid
               WHERE p.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `')))) END)
         -- An extension's script, run by the peer too; not what an event trigger of the user's,
         -- which does not fire there, runs inside it (on the call stack).
         AND NOT (COALESCE(pg_catalog.current_setting('tandem.ddl_ext', true) OPERATOR(pg_catalog.=)
             tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':x:' OPERATOR(pg_catalog.||) stmt), false)
           AND NOT EXISTS (SELECT FROM ` + eventTriggersOnStackSQL + `))
         -- The shim's own DO block (afterDDLSQL) that records a command and runs it (EXECUTE)
         -- in one statement: a row of tandem.ddl, which no client writes, put in by the same
         -- statement (tandem.ddl_own, made as it went in), and the command the block's own.
         AND NOT (COALESCE(pg_catalog.current_setting('tandem.ddl_own', true) OPERATOR(pg_catalog.=)
             tandem.ddl_mark_hash(k, txn OPERATOR(pg_catalog.||) ':o:' OPERATOR(pg_catalog.||) stmt), false)
           AND COALESCE(fn OPERATOR(pg_catalog.~) '^PL/pgSQL function inline_code_block line [0-9]+ at EXECUTE$', false)) THEN
        -- Named in the message, with the event triggers that run it.
        fn := COALESCE(pg_catalog.substring(fn, '^PL/pgSQL function (.*) line [0-9]+ at '),
          pg_catalog.substring(fn, '^SQL function "(.*)" (?:statement [0-9]+|during )'));
        SELECT fn OPERATOR(pg_catalog.||) COALESCE(', event trigger ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(pg_catalog.quote_ident(e.evtname), ', '), '') INTO fn
        FROM ` + eventTriggersOnStackSQL + `;
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s inside %s, run by a statement the shim records, is not shipped to the peer, whose run of the statement need not run it: refused',
            TG_TAG, COALESCE('function ' OPERATOR(pg_catalog.||) fn, 'a function or event trigger')),
          HINT = 'Send DDL on permanent objects as a statement of its own through Tandem''s shim (temporary objects are exempt).';
      END IF;
      -- A nested command on permanent objects let through above is one the peer's run of the
      -- statement runs too (an extension's script, the shim's own DO block, publish_schema's
      -- ALTER PUBLICATION): an event trigger of the user's made ENABLE ALWAYS or REPLICA that
      -- fires for it fires there as well, which its statement's tag need not tell
      -- (TestEventTriggerAlwaysNested).
      IF (CASE TG_EVENT
           WHEN 'sql_drop' THEN EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary)
           ELSE EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE NOT ` + tempCommandSQL + `) END) THEN
        ` + alwaysTriggersSQL + ` e.evtevent::pg_catalog.text OPERATOR(pg_catalog.=) ANY (CASE TG_EVENT WHEN 'sql_drop' THEN ARRAY['sql_drop']
          ELSE ARRAY['ddl_command_start', 'ddl_command_end'] END);
        ` + alwaysRefuseSQL + `
      END IF;
      RETURN;
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'sql_drop' THEN
      IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN
        PERFORM pg_catalog.set_config('tandem.ddl_temp', 'no', true);
        -- DROP TABLE tmp, perm: the peer, which lacks tmp, drops the permanent ones alone.
        IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE original AND is_temporary)
           AND NOT tandem.ddl_restate_drop(ddl_id) THEN
          RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = pg_catalog.format('tandem: %s of temporary and permanent objects in one statement cannot be shipped to the peer, which lacks the temporary ones: refused', TG_TAG),
            HINT = 'Drop the temporary objects in a statement of their own.';
        END IF;
      ELSIF pg_catalog.current_setting('tandem.ddl_temp', true) IS DISTINCT FROM 'no' THEN
        -- Taken back here, where ddl_unrecord sees the dropped objects itself: a client may set
        -- tandem.ddl_temp, which it therefore does not go by (TestDDLUnrecordForgedTemp).
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE NOT ` + tempCommandSQL + `) THEN
          PERFORM tandem.ddl_unrecord(ddl_id);
        END IF;
        PERFORM pg_catalog.set_config('tandem.ddl_temp', 'yes', true);
      END IF;
      RETURN;
    END IF;
    -- GRANT ... ON tmp, perm: the peer lacks tmp, and a grant gives no objects to restate it
    -- from (TestTempMixedGrant).
    IF TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['GRANT', 'REVOKE'])
       AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE c.classid IS NULL
         AND pg_catalog.lower(c.object_type) OPERATOR(pg_catalog.=) ANY (ARRAY['table', 'sequence']))
       AND (SELECT pg_catalog.bool_or(g.t) AND NOT pg_catalog.bool_and(g.t) FROM ` + grantRowsSQL + `) THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: %s on temporary and permanent tables in one statement cannot be shipped to the peer, which lacks the temporary ones: refused', TG_TAG),
        HINT = 'Grant or revoke on the temporary tables in a statement of their own.';
    END IF;
    IF pg_catalog.current_setting('tandem.ddl_temp', true) IS DISTINCT FROM 'no'
       AND (pg_catalog.current_setting('tandem.ddl_temp', true) IS NOT DISTINCT FROM 'yes'
            OR EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE ` + tempCommandSQL + `))
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE NOT ` + tempCommandSQL + `) THEN
      PERFORM tandem.ddl_unrecord(ddl_id);
    ELSE
      -- An event trigger of the user's made ENABLE ALWAYS (or ENABLE REPLICA) fires in the
      -- peer's apply too, which runs the statement: the rows it writes there come on top of
      -- those shipped from here, or are there alone (TestEventTriggerAlwaysRows).
      ` + alwaysTriggersSQL + ` (e.evtevent::pg_catalog.text OPERATOR(pg_catalog.=) ANY (ARRAY['ddl_command_start', 'ddl_command_end'])
          OR (e.evtevent::pg_catalog.text OPERATOR(pg_catalog.=) 'sql_drop' AND pg_catalog.current_setting('tandem.ddl_temp', true) OPERATOR(pg_catalog.=) 'no'));
      ` + alwaysRefuseSQL + `
      IF pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 THEN
        -- Shipped DDL that made a permanent object depend on a temporary one (a default of
        -- nextval('tmpseq'), a trigger running pg_temp.f(), a column of a temporary type): the
        -- peer lacks the temporary object and would refuse it, stopping shipping; and the end
        -- of the session drops the dependent part here alone (TestTempDependency). No earlier
        -- statement of the transaction made one: it was refused so.
        SELECT pg_catalog.format('%s depends on %s', pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
            pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)) INTO dep
        FROM pg_catalog.pg_depend d, LATERAL pg_catalog.pg_identify_object_as_address(d.classid, d.objid, d.objsubid) o
        WHERE pg_catalog.age(d.xmin) OPERATOR(pg_catalog.<=) 0
          AND CASE d.refclassid
            WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN EXISTS (SELECT FROM pg_catalog.pg_class r
              WHERE r.oid OPERATOR(pg_catalog.=) d.refobjid AND r.relpersistence OPERATOR(pg_catalog.=) 't')
            WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN EXISTS (SELECT FROM pg_catalog.pg_type y
              WHERE y.oid OPERATOR(pg_catalog.=) d.refobjid AND y.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())
            WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN EXISTS (SELECT FROM pg_catalog.pg_proc f
              WHERE f.oid OPERATOR(pg_catalog.=) d.refobjid AND f.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())
            ELSE false END
          -- An object of a temporary one's: its names begin with its schema, or its table's. Not a
          -- cast's or a transform's, in no schema, whose names begin with a type's
          -- (TestTempDependencyCast).
          AND (d.classid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_cast'::pg_catalog.regclass, 'pg_catalog.pg_transform'::pg_catalog.regclass])
            OR NOT o.object_names[1] OPERATOR(pg_catalog.~) '^pg_(toast_)?temp(_[0-9]+)?([.]|$)')
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_class r WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
            AND r.oid OPERATOR(pg_catalog.=) d.objid AND r.relpersistence OPERATOR(pg_catalog.=) 't')
        LIMIT 1;
        IF dep IS NOT NULL THEN
          RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = pg_catalog.format('tandem: %s makes a permanent object depend on a temporary one, which the peer lacks: refused (%s)', TG_TAG, dep),
            HINT = 'Make the object temporary too, or what it depends on permanent.';
        END IF;
      END IF;
    END IF;
    PERFORM pg_catalog.set_config('tandem.ddl_temp', '', true), pg_catalog.set_config('tandem.ddl_id', '', true),
      pg_catalog.set_config('tandem.ddl_depth', '', true), pg_catalog.set_config('tandem.ddl_ext', '', true);
    RETURN;
  END IF;
  IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_start' THEN
    RETURN;
  END IF;
  -- A subscription belongs to its database: the shim sends CREATE/ALTER/DROP SUBSCRIPTION as
  -- is and does not record them, and refusing one at its end would leave what it did on the
  -- publisher (CREATE SUBSCRIPTION makes a slot there), which a rollback does not undo.
  -- REINDEX changes no definition; PostgreSQL 17 fires event triggers for it (15 does not),
  -- and REINDEX ... CONCURRENTLY would be refused after it committed its work.
  IF TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION', 'DROP SUBSCRIPTION', 'REINDEX']) THEN
    RETURN;
  END IF;
  IF TG_EVENT OPERATOR(pg_catalog.=) 'sql_drop' THEN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN
      RETURN;
    END IF;
  ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands()
                    WHERE schema_name IS DISTINCT FROM 'pg_temp') THEN
    RETURN;
  END IF;
  RAISE EXCEPTION USING ERRCODE = '0A000',
    MESSAGE = pg_catalog.format('tandem: %s inside a DO block, function, procedure or trigger is not shipped to the peer: refused', TG_TAG),
    HINT = 'Send the DDL as a statement of its own through Tandem''s shim, which records it for the peer (temporary objects are exempt).';
END $f$;
-- ddl_unrecord takes back the record of DDL (ddl_guard) as the table's owner: the client's
-- role may not write tandem.ddl. Only a row of the calling transaction's, so that no client
-- can take back another's record: a row it sees whose inserting transaction is still in
-- progress is its own (its xmin, of this epoch, as an xid8). And only at the end of a command
-- on temporary objects only, the evidence ddl_guard goes by, so that a client calling it
-- itself does not take back the record of its DDL on permanent objects
-- (TestDDLUnrecordByClient): pg_event_trigger_ddl_commands() works in a DDL command only. A
-- DROP, which collects no command, only in its sql_drop event, from its dropped objects
-- (pg_event_trigger_dropped_objects() works there only), not from tandem.ddl_temp, a setting
-- any client may set (TestDDLUnrecordForgedTemp).
CREATE OR REPLACE FUNCTION tandem.ddl_unrecord(ddl_id pg_catalog.int8) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE NOT ` + tempCommandSQL + `) THEN
      RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c WHERE ` + tempCommandSQL + `)
       AND (NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects())
            OR EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE NOT is_temporary)) THEN
      RETURN;
    END IF;
  EXCEPTION WHEN OTHERS THEN
    RETURN;
  END;
  DELETE FROM tandem.ddl d WHERE d.id OPERATOR(pg_catalog.=) ddl_id
    AND pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
      OPERATOR(pg_catalog.|) d.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress';
END $f$;
-- ddl_bound_id is the id of the tandem.ddl row of the DDL statement running now when the shim
-- recorded it: from the mark ddl_guard bound to the statement at its first command (s:id:...),
-- checked again, as no setting a client may write is taken as it is; else NULL.
--
-- ddl_ctas (event trigger tandem_ddl_ctas, at the end of CREATE TABLE ... AS and SELECT ...
-- INTO; its name sorts before tandem_ddl_guard's, which ends the mark) rewrites the record of
-- such a statement the shim recorded, as the table's owner, into the definition of the
-- published table it made: its columns' names, types and collations, access method, storage
-- parameters and tablespace, all such a statement gives. The peer ran the recorded query
-- before, only to empty the table it filled (emptyNewTablesSQL: the rows come from the local
-- database), and a query on the session's temporary tables (or a prepared statement of the
-- session's: CREATE TABLE ... AS EXECUTE) failed there (42P01) and stopped shipping
-- (TestTempCTAS). An UNLOGGED table is rewritten too (CREATE UNLOGGED TABLE): its rows are
-- never shipped, the peer's copy lacks them (README), and its query failed there alike
-- (TestTempCTASUnlogged). Another table outside the publication keeps its statement: its rows
-- are not shipped, the peer's run makes them. The rewrite is an UPDATE after the rows the statement
-- wrote; the apply runs the recorded statement with its last text in the transaction
-- (Txn.ddlRestated). Only the statement's own command (tandem.ddl_depth; a command a function
-- runs shows that function in its context), only a row of the transaction's (as
-- ddl_unrecord); an event trigger function, which no client can call.
CREATE OR REPLACE FUNCTION tandem.ddl_bound_id() RETURNS pg_catalog.int8
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE
  mark pg_catalog.text := pg_catalog.current_setting('tandem.ddl', true);
  id pg_catalog.int8;
BEGIN
  IF mark IS NULL OR mark OPERATOR(pg_catalog.!~) '^s:[0-9]{1,18}:' THEN
    RETURN NULL;
  END IF;
  id := pg_catalog.split_part(mark, ':', 2)::pg_catalog.int8;
  IF mark OPERATOR(pg_catalog.=) ('s:' OPERATOR(pg_catalog.||) id OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
      tandem.ddl_mark_hash((SELECT d.k FROM tandem.ddl_key d LIMIT 1), pg_catalog.concat_ws(':', pg_catalog.pg_backend_pid(),
        pg_catalog.pg_current_xact_id_if_assigned(), id) OPERATOR(pg_catalog.||) ':s:' OPERATOR(pg_catalog.||)
        EXTRACT(epoch FROM pg_catalog.statement_timestamp())::pg_catalog.text)) THEN
    RETURN id;
  END IF;
  RETURN NULL;
END $f$;
-- ddl_rewrite refuses a statement the shim records that rewrites a permanent table while an
-- event trigger of the user's made ENABLE ALWAYS or ENABLE REPLICA is on table_rewrite for it
-- (ddl_guard does so for the other events): it fires in the peer's apply too, whose run of
-- the statement rewrites the table there as well (TestEventTriggerAlwaysRewrite).
CREATE OR REPLACE FUNCTION tandem.ddl_rewrite() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE dep pg_catalog.text;
BEGIN
  IF pg_catalog.current_setting('tandem.client', true) IS NULL OR tandem.ddl_bound_id() IS NULL
     OR EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.pg_event_trigger_table_rewrite_oid()
       AND c.relpersistence OPERATOR(pg_catalog.=) 't') THEN
    RETURN;
  END IF;
  ` + alwaysTriggersSQL + ` e.evtevent::pg_catalog.text OPERATOR(pg_catalog.=) 'table_rewrite';
  ` + alwaysRefuseSQL + `
END $f$;
CREATE OR REPLACE FUNCTION tandem.ddl_ctas() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE
  ctx pg_catalog.text;
  rel pg_catalog.oid;
  s pg_catalog.text;
  ddl_id pg_catalog.int8 := tandem.ddl_bound_id();
BEGIN
  IF pg_catalog.current_setting('tandem.client', true) IS NULL OR ddl_id IS NULL
     OR COALESCE(NULLIF(pg_catalog.current_setting('tandem.ddl_depth', true), ''), '1')::pg_catalog.int4 OPERATOR(pg_catalog.>) 1 THEN
    RETURN;
  END IF;
  GET DIAGNOSTICS ctx = PG_CONTEXT;
  IF pg_catalog.strpos(ctx, E'\n') OPERATOR(pg_catalog.>) 0 THEN
    RETURN;
  END IF;
  SELECT c.objid INTO rel FROM pg_catalog.pg_event_trigger_ddl_commands() c
  WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  LIMIT 1;
  IF rel IS NULL THEN
    -- CREATE TABLE IF NOT EXISTS ... AS found the table there and did nothing: nor does the peer
    -- (which has it too), only its parse of the query would fail on what it lacks, a temporary
    -- table (TestTempCTASIfNotExists). The record is taken back, a DELETE right behind its
    -- INSERT (no row was written between), which the apply takes for neither.
    DELETE FROM tandem.ddl d WHERE d.id OPERATOR(pg_catalog.=) ddl_id
      AND pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
        OPERATOR(pg_catalog.|) d.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress';
    RETURN;
  END IF;
  SELECT pg_catalog.format('CREATE %sTABLE %I.%I (%s) USING %I%s%s', CASE r.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END, n.nspname, r.relname,
      COALESCE((SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
          CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) ty.typcollation THEN
            (SELECT pg_catalog.format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_catalog.pg_collation co
             JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation)
          ELSE '' END), ', ' ORDER BY a.attnum)
        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid
        WHERE a.attrelid OPERATOR(pg_catalog.=) r.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped), ''),
      am.amname,
      CASE WHEN r.reloptions IS NOT NULL THEN pg_catalog.format(' WITH (%s)', pg_catalog.array_to_string(r.reloptions, ', ')) ELSE '' END,
      CASE WHEN r.reltablespace OPERATOR(pg_catalog.<>) 0 THEN
        (SELECT pg_catalog.format(' TABLESPACE %I', sp.spcname) FROM pg_catalog.pg_tablespace sp WHERE sp.oid OPERATOR(pg_catalog.=) r.reltablespace)
      ELSE '' END) INTO s
  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) r.relnamespace
  JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) r.relam
  WHERE r.oid OPERATOR(pg_catalog.=) rel AND r.relkind OPERATOR(pg_catalog.=) 'r'
    AND (r.relpersistence OPERATOR(pg_catalog.=) 'u'
      OR (r.relpersistence OPERATOR(pg_catalog.=) 'p' AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables t WHERE t.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `'
        AND t.schemaname OPERATOR(pg_catalog.=) n.nspname AND t.tablename OPERATOR(pg_catalog.=) r.relname)));
  IF s IS NULL THEN
    RETURN;
  END IF;
  UPDATE tandem.ddl d SET stmt = s WHERE d.id OPERATOR(pg_catalog.=) ddl_id
    AND pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
      OPERATOR(pg_catalog.|) d.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress';
END $f$;
-- ddl_restate_drop rewrites the record of a DROP of temporary and permanent objects in one
-- statement (ddl_guard), as the table's owner, into a DROP of the permanent ones alone (with
-- CASCADE when it dropped other permanent objects through them): the peer lacks the temporary
-- ones and refused the statement (42P01), stopping shipping (TestTempMixedDrop). As
-- ddl_ctas, only a row of the calling transaction's, to a text made from the dropped
-- objects (pg_event_trigger_dropped_objects(), in a sql_drop event only). False when it cannot
-- (objects of a kind it does not name), and the guard refuses the statement.
CREATE OR REPLACE FUNCTION tandem.ddl_restate_drop(ddl_id pg_catalog.int8) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE s pg_catalog.text;
BEGIN
  BEGIN
    SELECT pg_catalog.format('DROP %s %s%s', pg_catalog.upper(pg_catalog.min(o.object_type)),
        pg_catalog.string_agg(o.object_identity, ', '),
        CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() x WHERE NOT x.original AND x.normal AND NOT x.is_temporary)
          THEN ' CASCADE' ELSE '' END) INTO s
    FROM pg_catalog.pg_event_trigger_dropped_objects() o WHERE o.original AND NOT o.is_temporary
    HAVING pg_catalog.count(DISTINCT o.object_type) OPERATOR(pg_catalog.=) 1
      AND pg_catalog.min(o.object_type) OPERATOR(pg_catalog.=) ANY (ARRAY['table', 'sequence', 'view', 'materialized view', 'index',
        'foreign table', 'type', 'domain', 'function', 'procedure'])
      AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() x WHERE x.original AND x.is_temporary);
  EXCEPTION WHEN OTHERS THEN
    RETURN false;
  END;
  IF s IS NULL THEN
    RETURN false;
  END IF;
  UPDATE tandem.ddl d SET stmt = s WHERE d.id OPERATOR(pg_catalog.=) ddl_id
    AND pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
      OPERATOR(pg_catalog.|) d.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress';
  RETURN FOUND;
END $f$;
CREATE OR REPLACE FUNCTION tandem.publish_schema() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE r record;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) '` + PublicationName + `' AND NOT puballtables) THEN
    RETURN;
  END IF;
  FOR r IN SELECT n.nspname FROM pg_catalog.pg_event_trigger_ddl_commands() c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.objid
      WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) pn.pnpubid
          WHERE p.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `' AND pn.pnnspid OPERATOR(pg_catalog.=) n.oid) LOOP
    EXECUTE pg_catalog.format('ALTER PUBLICATION ` + PublicationName + ` ADD TABLES IN SCHEMA %I', r.nspname);
  END LOOP;
END $f$;
CREATE OR REPLACE FUNCTION tandem.ddl_extension_rows() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE
  -- A shim client's session (even one that set session_replication_role itself, or changed
  -- tandem.client, which it cannot take away: ddl_guard), or else the peer's apply.
  peer boolean := pg_catalog.current_setting('tandem.client', true) IS NULL;
  tables pg_catalog.text;
  r record;
  n pg_catalog.text;
BEGIN
  IF peer AND pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica' THEN
    RETURN;
  END IF;
  IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_start' THEN
    IF peer THEN
      PERFORM pg_catalog.set_config('tandem.tables_before',
        (SELECT coalesce(pg_catalog.array_agg(oid), '{}')::pg_catalog.text FROM pg_catalog.pg_class WHERE relkind OPERATOR(pg_catalog.=) 'r'), true);
      RETURN;
    END IF;
    -- A client's statement on the local database: each published table of an extension, with
    -- its rows and those of them this transaction wrote (xmin its own or later).
    tables := '';
    FOR r IN SELECT c.oid::pg_catalog.regclass AS rel` + extensionTablesFrom + ` LOOP
      EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) OPERATOR(pg_catalog.||) ''/'' OPERATOR(pg_catalog.||) pg_catalog.count(*) FILTER (WHERE pg_catalog.age(xmin) OPERATOR(pg_catalog.<=) 0) FROM ONLY %s', r.rel) INTO n;
      tables := tables OPERATOR(pg_catalog.||) r.rel::pg_catalog.oid OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) n OPERATOR(pg_catalog.||) ' ';
    END LOOP;
    PERFORM pg_catalog.set_config('tandem.extension_rows_before', tables, true);
    RETURN;
  END IF;
  IF NOT peer THEN
    FOR r IN SELECT * FROM (SELECT c.oid::pg_catalog.regclass AS rel,
          (SELECT b[2] FROM pg_catalog.regexp_matches(pg_catalog.current_setting('tandem.extension_rows_before'), '(\d+):(\S+)', 'g') b
           WHERE b[1]::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid) AS was` + extensionTablesFrom + `) x
        WHERE x.was IS NOT NULL LOOP
      EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) OPERATOR(pg_catalog.||) ''/'' OPERATOR(pg_catalog.||) pg_catalog.count(*) FILTER (WHERE pg_catalog.age(xmin) OPERATOR(pg_catalog.<=) 0) FROM ONLY %s', r.rel) INTO n;
      IF n OPERATOR(pg_catalog.<>) r.was THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s wrote rows of table %s, which was there before it: the peer''s run of it writes them too, and the shipped rows would come on top', TG_TAG, r.rel),
          HINT = 'The rows an extension script writes reach the peer only for the tables the same statement makes.';
      END IF;
    END LOOP;
    RETURN;
  END IF;
  SELECT pg_catalog.string_agg(c.oid::pg_catalog.regclass::pg_catalog.text, ', ') INTO tables
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relpersistence OPERATOR(pg_catalog.=) 'p'
    AND c.oid OPERATOR(pg_catalog.<>) ALL (pg_catalog.current_setting('tandem.tables_before')::pg_catalog.oid[])
    AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables t WHERE t.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `'
      AND t.schemaname OPERATOR(pg_catalog.=) n.nspname AND t.tablename OPERATOR(pg_catalog.=) c.relname);
  IF tables IS NOT NULL THEN
    EXECUTE 'TRUNCATE ONLY ' OPERATOR(pg_catalog.||) tables;
  END IF;
END $f$;
DO $d$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_extension_before') THEN
    CREATE EVENT TRIGGER tandem_extension_before ON ddl_command_start
      WHEN TAG IN ('CREATE EXTENSION', 'ALTER EXTENSION') EXECUTE FUNCTION tandem.ddl_extension_rows();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_extension_rows') THEN
    CREATE EVENT TRIGGER tandem_extension_rows ON ddl_command_end
      WHEN TAG IN ('CREATE EXTENSION', 'ALTER EXTENSION') EXECUTE FUNCTION tandem.ddl_extension_rows();
  END IF;
  ALTER EVENT TRIGGER tandem_extension_before ENABLE ALWAYS;
  ALTER EVENT TRIGGER tandem_extension_rows ENABLE ALWAYS;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_ddl_ctas') THEN
    CREATE EVENT TRIGGER tandem_ddl_ctas ON ddl_command_end
      WHEN TAG IN ('CREATE TABLE AS', 'SELECT INTO') EXECUTE FUNCTION tandem.ddl_ctas();
  END IF;
  ALTER EVENT TRIGGER tandem_ddl_ctas ENABLE ALWAYS;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_ddl_guard') THEN
    CREATE EVENT TRIGGER tandem_ddl_guard ON ddl_command_end EXECUTE FUNCTION tandem.ddl_guard();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_ddl_guard_drop') THEN
    CREATE EVENT TRIGGER tandem_ddl_guard_drop ON sql_drop EXECUTE FUNCTION tandem.ddl_guard();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_ddl_guard_start') THEN
    CREATE EVENT TRIGGER tandem_ddl_guard_start ON ddl_command_start EXECUTE FUNCTION tandem.ddl_guard();
  END IF;
  -- Also in a session that set session_replication_role = replica (a superuser's may), where
  -- triggers of the default kind do not fire: the guard would be off there. The peer's apply,
  -- which sets it, is no client session: the guard lets it be.
  ALTER EVENT TRIGGER tandem_ddl_guard ENABLE ALWAYS;
  ALTER EVENT TRIGGER tandem_ddl_guard_drop ENABLE ALWAYS;
  ALTER EVENT TRIGGER tandem_ddl_guard_start ENABLE ALWAYS;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_ddl_rewrite') THEN
    CREATE EVENT TRIGGER tandem_ddl_rewrite ON table_rewrite EXECUTE FUNCTION tandem.ddl_rewrite();
  END IF;
  ALTER EVENT TRIGGER tandem_ddl_rewrite ENABLE ALWAYS;
  -- The mark of DDL the shim records (ddl_guard): made as its row goes into tandem.ddl. Also in
  -- a client's session that set session_replication_role = replica, where a trigger of the
  -- default kind does not fire and the DDL recorded would meet no mark (TestDDLRecordedReplicaRole);
  -- in the peer's apply it sets a setting nothing reads there. Altered only when it must be: the
  -- ALTER waits for every transaction that wrote tandem.ddl.
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname OPERATOR(pg_catalog.=) 'tandem_ddl_mark'
      AND tgrelid OPERATOR(pg_catalog.=) 'tandem.ddl'::pg_catalog.regclass) THEN
    CREATE TRIGGER tandem_ddl_mark AFTER INSERT ON tandem.ddl FOR EACH ROW EXECUTE FUNCTION tandem.ddl_mark();
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname OPERATOR(pg_catalog.=) 'tandem_ddl_mark'
      AND tgrelid OPERATOR(pg_catalog.=) 'tandem.ddl'::pg_catalog.regclass AND tgenabled OPERATOR(pg_catalog.<>) 'A') THEN
    ALTER TABLE tandem.ddl ENABLE ALWAYS TRIGGER tandem_ddl_mark;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'tandem_publish_schema') THEN
    CREATE EVENT TRIGGER tandem_publish_schema ON ddl_command_end
      WHEN TAG IN ('CREATE SCHEMA') EXECUTE FUNCTION tandem.publish_schema();
  END IF;
  ALTER EVENT TRIGGER tandem_publish_schema ENABLE ALWAYS;
END $d$;
`

// alwaysTriggersSQL, followed by a condition on e.evtevent and a semicolon, puts into dep the
// event triggers of the user's (not Tandem's) made ENABLE ALWAYS or ENABLE REPLICA on such an
// event that fire for ddl_guard's command (TG_TAG, or the CREATE TABLE the peer runs for it);
// alwaysRefuseSQL then refuses the command
// (0A000) if there are any: such a trigger fires in the peer's apply too, which runs the
// command as well, and what it writes there comes on top of the rows shipped from here.
const alwaysTriggersSQL = `SELECT pg_catalog.string_agg(pg_catalog.quote_ident(e.evtname), ', ' ORDER BY e.evtname) INTO dep
      FROM pg_catalog.pg_event_trigger e JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) e.evtfoid
      WHERE e.evtenabled OPERATOR(pg_catalog.<>) 'O' AND e.evtenabled OPERATOR(pg_catalog.<>) 'D'
        AND f.pronamespace OPERATOR(pg_catalog.<>) 'tandem'::pg_catalog.regnamespace
        AND (e.evttags IS NULL OR TG_TAG OPERATOR(pg_catalog.=) ANY (e.evttags)
          -- CREATE TABLE ... AS and SELECT ... INTO reach the peer as CREATE TABLE (ddl_ctas).
          OR (TG_TAG OPERATOR(pg_catalog.=) ANY (ARRAY['CREATE TABLE AS', 'SELECT INTO']) AND 'CREATE TABLE' OPERATOR(pg_catalog.=) ANY (e.evttags))) AND`

const alwaysRefuseSQL = `IF dep IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: event trigger %s fires in the peer''s apply too (ENABLE ALWAYS or ENABLE REPLICA), which runs %s as well: what it writes there would come on top of what is shipped from here: refused', dep, TG_TAG),
          HINT = 'Make it an ordinary event trigger (ALTER EVENT TRIGGER ... ENABLE), which fires on the local database only.';
      END IF;`

// eventTriggersOnStackSQL is a FROM item e of the event triggers of the user's (not Tandem's)
// whose function is on the call stack of ddl_guard (stack, PG_CONTEXT): a line of it names
// a PL/pgSQL function by its signature as its caller's search_path shows it, qualified or
// not (an event trigger function takes no arguments).
const eventTriggersOnStackSQL = `pg_catalog.pg_event_trigger e JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) e.evtfoid
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) f.pronamespace
             WHERE n.nspname OPERATOR(pg_catalog.<>) 'tandem' AND EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(stack, E'\n')) x(l)
               WHERE pg_catalog.starts_with(x.l, 'PL/pgSQL function ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(f.proname) OPERATOR(pg_catalog.||) '() line ')
                 OR pg_catalog.starts_with(x.l, 'PL/pgSQL function ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                   OPERATOR(pg_catalog.||) pg_catalog.quote_ident(f.proname) OPERATOR(pg_catalog.||) '() line '))`

// extensionTablesFrom picks the published (application schemas), permanent plain tables that
// belong to an extension.
const extensionTablesFrom = ` FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
      WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relpersistence OPERATOR(pg_catalog.=) 'p'
        AND EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.deptype OPERATOR(pg_catalog.=) 'e')
        AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables t WHERE t.pubname OPERATOR(pg_catalog.=) '` + PublicationName + `'
          AND t.schemaname OPERATOR(pg_catalog.=) n.nspname AND t.tablename OPERATOR(pg_catalog.=) c.relname)`

// tempCommandSQL tells whether command c of pg_event_trigger_ddl_commands() is on a temporary
// object: in pg_temp, or a trigger, policy or rule — in no schema of their own — of a
// temporary table (TestTempTableTriggerDDL). Never null. A GRANT or REVOKE on tables comes
// with no object at all: it is on a temporary table when the catalog rows it changed
// (grantRowsSQL) are of temporary tables only (TestTempTableGrant). Not the transaction's
// other rows: a permanent table it changed before the grant kept the grant's record, which the
// peer then refused (TestTempGrantAfterPermanent).
const tempCommandSQL = `COALESCE(c.schema_name OPERATOR(pg_catalog.=) 'pg_temp'
         OR (c.command_tag OPERATOR(pg_catalog.=) ANY (ARRAY['GRANT', 'REVOKE']) AND c.classid IS NULL
           AND pg_catalog.lower(c.object_type) OPERATOR(pg_catalog.=) ANY (ARRAY['table', 'sequence'])
           AND (SELECT pg_catalog.bool_and(g.t) FROM ` + grantRowsSQL + `))
         OR (SELECT r.relpersistence FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=) CASE c.classid
             WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE g.oid OPERATOR(pg_catalog.=) c.objid)
             WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT g.polrelid FROM pg_catalog.pg_policy g WHERE g.oid OPERATOR(pg_catalog.=) c.objid)
             WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT g.ev_class FROM pg_catalog.pg_rewrite g WHERE g.oid OPERATOR(pg_catalog.=) c.objid)
           END) OPERATOR(pg_catalog.=) 't', false)`

// grantRowsSQL is a FROM item g of the catalog rows of tables (g.t: of a temporary one) that the
// GRANT or REVOKE under way changed: those of pg_class and pg_attribute of the transaction's
// own (ownRowSQL) with a command id (cmin) past the greatest one of them at its start
// (grantStartSQL, in tandem.ddl_cid; it changes one table after another, with a command id
// each). A client cannot set tandem.ddl_cid in between: a grant runs nothing of its.
const grantRowsSQL = `(
                 SELECT r.cmin::pg_catalog.text::pg_catalog.int8 AS cid, r.relpersistence OPERATOR(pg_catalog.=) 't' AS t
                 FROM pg_catalog.pg_class r WHERE ` + ownRowSQL + `
                 UNION ALL
                 SELECT a.cmin::pg_catalog.text::pg_catalog.int8, r.relpersistence OPERATOR(pg_catalog.=) 't'
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) a.attrelid
                 WHERE ` + ownAttRowSQL + `) g
             WHERE g.cid OPERATOR(pg_catalog.>) COALESCE(NULLIF(pg_catalog.current_setting('tandem.ddl_cid', true), ''), '-1')::pg_catalog.int8`

// grantStartSQL keeps in tandem.ddl_cid the greatest command id of the transaction's rows of
// pg_class and pg_attribute, at the start of a GRANT or REVOKE (grantRowsSQL).
const grantStartSQL = `pg_catalog.set_config('tandem.ddl_cid', COALESCE((SELECT pg_catalog.max(g.cid) FROM (
                 SELECT r.cmin::pg_catalog.text::pg_catalog.int8 AS cid
                 FROM pg_catalog.pg_class r WHERE ` + ownRowSQL + `
                 UNION ALL
                 SELECT a.cmin::pg_catalog.text::pg_catalog.int8
                 FROM pg_catalog.pg_attribute a WHERE ` + ownAttRowSQL + `) g), -1)::pg_catalog.text, true)`

// ownRowSQL tells whether catalog row r was written by the transaction running it, or one of
// its subtransactions: a row it sees whose writer is still in progress (its xmin, of this
// epoch, as an xid8). Not age(xmin) <= 0 alone, which takes in the rows of every transaction
// that began after this one and committed: another session's DDL on permanent tables then
// counted as the grant's, its command ids past the grant's own, and the grant on a temporary
// table was kept and refused by the peer (TestTempGrantConcurrentDDL). The age comes first
// (CASE), as the cheap test and so that no older xmin is given this epoch.
const ownRowSQL = `CASE WHEN pg_catalog.age(r.xmin) OPERATOR(pg_catalog.<=) 0 THEN
                   pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
                     OPERATOR(pg_catalog.|) r.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress'
                 ELSE false END`

// ownAttRowSQL is ownRowSQL for catalog row a.
const ownAttRowSQL = `CASE WHEN pg_catalog.age(a.xmin) OPERATOR(pg_catalog.<=) 0 THEN
                   pg_catalog.pg_xact_status(((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.&) -4294967296)
                     OPERATOR(pg_catalog.|) a.xmin::pg_catalog.text::pg_catalog.int8)::pg_catalog.text::pg_catalog.xid8) OPERATOR(pg_catalog.=) 'in progress'
                 ELSE false END`

// ddlMarkSQL records a DDL statement ($1) in tandem.ddl and marks the transaction's DDL as
// recorded for ddlGuardSQL's trigger, in one statement: the row's insert makes the mark
// (tandem.ddl_mark), over the 'on' this sets, which only the guard of an install from before
// such marks goes by (and the current one for a statement of the client's own that creates or
// drops an index or alters a table, outside a transaction block: lastPartShipAfter).
// ddlUnmarkSQL ends the mark once the statement ran, so that DDL inside a later statement of
// the transaction is refused again. tandem.ddl_id, which the current guard no longer reads (the
// row's id is in the mark), is still set for the guard of such an older install.
const (
	ddlMarkSQL = "INSERT INTO tandem.ddl (stmt) SELECT $1::pg_catalog.text FROM pg_catalog.set_config('tandem.ddl', 'on', true) " +
		"RETURNING pg_catalog.set_config('tandem.ddl_id', id::pg_catalog.text, true)"
	ddlUnmarkSQL = "SELECT pg_catalog.set_config('tandem.ddl', '', true), pg_catalog.set_config('tandem.ddl_id', '', true)"
)

// asSessionUserSQL makes the open transaction run as the session's user (SET LOCAL ROLE NONE)
// for a statement of the shim's on Tandem's tables when the client set a role, keeping the
// role in force in tandem.role; roleBackSQL puts it back. Only then: a change of role may
// change is_superuser, which PostgreSQL reports (twice, on and back; the shim keeps those
// reports from the client, pending.quietAuth). The role
// is kept by its name now, read from its id (CURRENT_USER), not as SHOW role says it — the
// name the client's SET ROLE used, which another session may have renamed since: putting it
// back failed, aborting the client's statement (25P02), and the peer could not have found
// it by that name (TestApplyDDLRoleRenamed). A client that set another session user (SET
// SESSION AUTHORIZATION, as pg_dump's output may: that user has no rights on tandem.ddl
// either, and its DDL was refused, 42501) gets the login user back the same way (SET LOCAL
// SESSION AUTHORIZATION), that user kept in tandem.session and recorded in tandem.role
// (TestSessionAuthorizationDDL). With a role set on top of that user (SET ROLE after SET
// SESSION AUTHORIZATION) the login user comes back too — dropping the role alone left the
// session's user, refused the same way — and the role (kept in tandem.setrole, as the
// client's SET ROLE left it: none when it set none) is set again after that user
// (TestSessionAuthorizationRoleDDL). The login user is read from the function behind
// pg_stat_activity, not the view: a database that keeps the view from its users (REVOKE
// SELECT … FROM PUBLIC, as hardening guides advise) refused every DDL statement under a role
// the client set, its transaction aborted (TestSetRoleDDLStatActivityRevoked).
const (
	sessionAuthorizedSQL = "(SESSION_USER::pg_catalog.text OPERATOR(pg_catalog.<>) " + loginUserSQL + ")"
	loginUserSQL         = "(SELECT pg_catalog.pg_get_userbyid(a.usesysid)::pg_catalog.text FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a)"
	asSessionUserSQL     = "SELECT pg_catalog.set_config('tandem.session', CASE WHEN " + sessionAuthorizedSQL + " THEN SESSION_USER::pg_catalog.text ELSE '' END, true), " +
		"pg_catalog.set_config('tandem.setrole', CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none' THEN CURRENT_USER::pg_catalog.text ELSE 'none' END, true), " +
		"pg_catalog.set_config('tandem.role', CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none' THEN CURRENT_USER::pg_catalog.text " +
		"WHEN " + sessionAuthorizedSQL + " THEN SESSION_USER::pg_catalog.text ELSE 'none' END, true), " +
		"CASE WHEN " + sessionAuthorizedSQL + " THEN pg_catalog.set_config('session_authorization', " + loginUserSQL + ", true) " +
		"WHEN CURRENT_USER OPERATOR(pg_catalog.<>) SESSION_USER THEN pg_catalog.set_config('role', 'none', true) END"
	roleBackSQL = "SELECT CASE WHEN pg_catalog.current_setting('tandem.session', true) OPERATOR(pg_catalog.<>) '' " +
		"THEN pg_catalog.set_config('session_authorization', pg_catalog.current_setting('tandem.session'), true) END, " +
		"CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) pg_catalog.current_setting('tandem.setrole') " +
		"THEN pg_catalog.set_config('role', pg_catalog.current_setting('tandem.setrole'), true) END"
)

// ddlMarkFinalizeSQL is ddlMarkSQL for ALTER TABLE … DETACH PARTITION … FINALIZE, recorded as
// $1 (without FINALIZE: the peer's partition was never detach-pending, as the concurrent
// detach that stopped after its first step was not recorded), followed by the CHECK
// constraints of the partition $2 (as written) that first step added, duplicating its
// partition constraint: those made in the transaction that marked it detach-pending.
const ddlMarkFinalizeSQL = `INSERT INTO tandem.ddl (stmt)
SELECT x.s FROM pg_catalog.set_config('tandem.ddl', 'on', true), (
  SELECT 0 AS o, $1::pg_catalog.text AS s
  UNION ALL
  SELECT 1, pg_catalog.format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, c.relname, con.conname, pg_catalog.pg_get_constraintdef(con.oid))
  FROM pg_catalog.pg_constraint con
  JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) con.conrelid AND i.inhdetachpending
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  WHERE con.conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2) AND con.contype OPERATOR(pg_catalog.=) 'c'
    AND con.xmin OPERATOR(pg_catalog.=) i.xmin
) x ORDER BY x.o`

// SQLSTATEs raised by Tandem's own checks on the peer.
const (
	sqlstateStaleTerm  = "TDM01" // the database's term record is newer than the transaction's
	sqlstateDivergence = "TDM02" // an UPDATE/DELETE did not hit exactly one row
)

// ErrStaleTerm is returned by WriteTermRecord when the database already holds a newer term, or
// the same term of another master.
var ErrStaleTerm = errors.New("tandem: the database holds a newer term record")

// ReadTermRecord reads the term record (DESIGN §3) from tandem.state. A database that never had
// one returns term 0, master "" and no error.
func ReadTermRecord(ctx context.Context, db *sql.DB) (term uint64, master string, peerSynced bool, err error) {
	var t int64
	err = db.QueryRowContext(ctx, `SELECT term, master, peer_synced FROM tandem.state WHERE id = 1`).Scan(&t, &master, &peerSynced)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("read term record from tandem.state: %w", err)
	}
	return uint64(t), master, peerSynced, nil
}

// WriteTermRecord stores (term, master, peerSynced) in tandem.state. Terms only grow: it
// returns an error wrapping ErrStaleTerm, and changes nothing, when the database already
// holds a newer term, or the same term of another master. The same term's master may rewrite
// it (e.g. to flip peer_synced).
//
// A term has one master, the first to write it: two sites that took the same term on stale
// views (a master paused before its peer heard of its new term, without a witness) are told
// apart, and the databases' fence (check_term, the shim's commit check) refuses the other.
func WriteTermRecord(ctx context.Context, db *sql.DB, term uint64, master string, peerSynced bool) error {
	res, err := db.ExecContext(ctx, `INSERT INTO tandem.state (id, term, master, peer_synced) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO UPDATE SET term = EXCLUDED.term, master = EXCLUDED.master, peer_synced = EXCLUDED.peer_synced
WHERE tandem.state.term < EXCLUDED.term OR (tandem.state.term = EXCLUDED.term AND tandem.state.master = EXCLUDED.master)`,
		int64(term), master, peerSynced)
	if err != nil {
		return fmt.Errorf("write term record %d/%s: %w", term, master, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		cur, who, _, rerr := ReadTermRecord(ctx, db)
		if rerr != nil {
			return fmt.Errorf("write term record %d/%s: %w", term, master, ErrStaleTerm)
		}
		return fmt.Errorf("write term record %d/%s: database is at term %d (master %s): %w", term, master, cur, who, ErrStaleTerm)
	}
	return nil
}

// sqlIdent quotes an SQL identifier.
func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sqlLiteral quotes an SQL string literal (standard_conforming_strings on).
func sqlLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
