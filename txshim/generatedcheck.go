package txshim

// A stored generated column is not published by PostgreSQL 15: each database computes it, the
// master under the writing session's settings, the peer under its apply session's
// (textSettings). PostgreSQL takes the conversion of a value to or from text by its type's
// output or input function (a CoerceViaIO: f::text, b::text) for immutable, though the text of
// a float depends on extra_float_digits, of a bytea on bytea_output, of a date or time on
// DateStyle and IntervalStyle, of money on lc_monetary: a client that changed one (or a
// database default other than the apply's) made the master store other text than the peer
// (TestFidelityGeneratedUnderClientSettings). The shim refuses such a column as DDL makes it.

// settingTypes are the types whose text (output or input) depends on a session setting:
// bytea, float4, float8, the geometric types, whose text is of float8s (point, lseg, path, box,
// polygon, line, circle), money, date, timestamp, timestamptz, interval. (xml's output leaves a
// declaration out whatever the settings.)
const settingTypes = `'{17,700,701,600,601,602,603,604,628,718,790,1082,1114,1184,1186}'`

// holdsSettingTypeSQL is the condition that the type typ (an oid) is one of settingTypes or is
// made of one (holdsTypeSQL).
func holdsSettingTypeSQL(typ string) string {
	return holdsTypeSQL(typ, settingTypes)
}

// generatedSettingsSQL is a statement for afterDDLSQL's DO block: it raises 0A000 when the
// transaction made a stored generated column (of a table that is not temporary, whose DDL
// reaches the peer) whose expression converts a value of a type in settingTypes (or made of
// one) to text by its output function. It reads the expression's node tree from the innermost
// node out, putting each node's place a mark of its type (<T701>), so that a CoerceViaIO's
// :arg shows the type it converts from: (f::int)::text and id::text::bytea are taken, f::text
// and (a[1:2])::text for a float8[] a are not. A conversion from a node whose type it does not
// read is refused too. A value reaches text without a CoerceViaIO in the stored tree as well
// (TestGeneratedTextWithoutCast): through a function or operator that takes it as a
// polymorphic or "any" argument and returns text (f || 'x' is anytextcat, an SQL function
// PostgreSQL 15 inlines to $1::text || $2 when it checks the expression, and so takes for
// immutable; quote_literal(anyelement) likewise), through a function returning cstring (a
// type's output function called by name: float8out(f)), through an XML constructor (the
// value's output function, a bytea's by xmlbinary): such a node with an argument of such a
// type is refused, as is a function not immutable (an SQL function PostgreSQL inlined to check
// it: the application's STABLE one whose body says $1::text) with one. So is a function of the
// application's (not built in, nor an extension's) with one, whatever volatility it declares,
// when its body may convert it (appFuncMayConvertSQL): PostgreSQL takes IMMUTABLE at its word,
// and the body may say $1::text too (TestGeneratedImmutableFunctionTextRefused).
func generatedSettingsSQL() string {
	return `  DECLARE g pg_catalog.record; tree pg_catalog.text; node pg_catalog.text[]; typ pg_catalog.text; arg pg_catalog.text; bad pg_catalog.bool;
  BEGIN
  FOR g IN SELECT a.attrelid::pg_catalog.regclass AS rel, a.attname, d.adbin::pg_catalog.text AS tree
    FROM pg_catalog.pg_attrdef d
    JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid AND a.attnum OPERATOR(pg_catalog.=) d.adnum
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) d.adrelid
    WHERE pg_catalog.age(d.xmin) OPERATOR(pg_catalog.<=) 0 AND a.attgenerated OPERATOR(pg_catalog.=) 's'
      AND NOT a.attisdropped AND t.relpersistence OPERATOR(pg_catalog.<>) 't'
      AND d.adbin::pg_catalog.text OPERATOR(pg_catalog.~) '\{(COERCEVIAIO|FUNCEXPR|OPEXPR|XMLEXPR) '
  LOOP
    tree := g.tree;
    bad := false;
    LOOP
      -- An innermost node: its kind and fields, every node inside already a mark.
      node := pg_catalog.regexp_match(tree, '\{([A-Z_]+)((?: [^{}]*)?)\}');
      EXIT WHEN node IS NULL;
      typ := (pg_catalog.regexp_match(node[2],
        ':(?:vartype|consttype|funcresulttype|opresulttype|resulttype|casetype|coalescetype|minmaxtype|array_typeid|row_typeid|refrestype|paramtype|typeId|type) (\d+)'))[1];
      IF typ IS NULL AND node[1] OPERATOR(pg_catalog.=) 'COLLATEEXPR' THEN
        typ := (pg_catalog.regexp_match(node[2], ':arg <T(\d+)>'))[1];
      END IF;
      IF typ IS NULL AND node[1] OPERATOR(pg_catalog.=) ANY ('{BOOLEXPR,NULLTEST,BOOLEANTEST,SCALARARRAYOPEXPR}') THEN
        typ := '16';
      END IF;
      IF node[1] OPERATOR(pg_catalog.=) 'COERCEVIAIO' THEN
        arg := (pg_catalog.regexp_match(node[2], ':arg <T(\d*)>'))[1];
        IF arg IS NULL OR arg OPERATOR(pg_catalog.=) '' OR ` + holdsSettingTypeSQL("arg::pg_catalog.oid") + ` THEN
          bad := true;
          EXIT;
        END IF;
      ELSIF node[1] OPERATOR(pg_catalog.=) ANY ('{FUNCEXPR,OPEXPR,XMLEXPR}') THEN
        -- A function or operator that turns an argument to text by its output function: one
        -- returning cstring, or text (a string type) from a polymorphic or "any" argument;
        -- or one not immutable, an SQL function PostgreSQL took only as inlined, whose body
        -- it does not read. An XML constructor does so for every argument.
        arg := (pg_catalog.regexp_match(node[2], ':(?:funcid|opfuncid) (\d+)'))[1];
        IF (node[1] OPERATOR(pg_catalog.=) 'XMLEXPR' OR EXISTS (SELECT FROM pg_catalog.pg_proc pr
              JOIN pg_catalog.pg_type rt ON rt.oid OPERATOR(pg_catalog.=) pr.prorettype
              WHERE pr.oid OPERATOR(pg_catalog.=) arg::pg_catalog.oid
                AND (pr.prorettype OPERATOR(pg_catalog.=) 'pg_catalog.cstring'::pg_catalog.regtype
                  OR pr.provolatile OPERATOR(pg_catalog.<>) 'i'
                  -- The application's own, whatever it is declared, when it could convert.
                  OR pr.oid OPERATOR(pg_catalog.>=) 16384 AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend dep
                    WHERE dep.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                      AND dep.objid OPERATOR(pg_catalog.=) pr.oid AND dep.deptype OPERATOR(pg_catalog.=) 'e')
                    AND ` + appFuncMayConvertSQL + `
                  OR rt.typcategory OPERATOR(pg_catalog.=) 'S' AND EXISTS (SELECT FROM pg_catalog.unnest(pr.proargtypes) pa(oid)
                    JOIN pg_catalog.pg_type pt ON pt.oid OPERATOR(pg_catalog.=) pa.oid WHERE pt.typtype OPERATOR(pg_catalog.=) 'p'))))
          AND EXISTS (SELECT FROM pg_catalog.regexp_matches(node[2], '<T(\d*)>', 'g') m(t)
              WHERE m.t[1] OPERATOR(pg_catalog.=) '' OR ` + holdsSettingTypeSQL("NULLIF(m.t[1], '')::pg_catalog.oid") + `) THEN
          bad := true;
          EXIT;
        END IF;
      END IF;
      tree := pg_catalog.regexp_replace(tree, '\{([A-Z_]+)((?: [^{}]*)?)\}', '<T' OPERATOR(pg_catalog.||) COALESCE(typ, '') OPERATOR(pg_catalog.||) '>');
    END LOOP;
    -- Left with a conversion it did not read through (a node it does not read): refused too.
    IF bad OR tree OPERATOR(pg_catalog.~) '\{(COERCEVIAIO|FUNCEXPR|OPEXPR|XMLEXPR) ' THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: stored generated column %I of %s converts a value to text whose text depends on session settings (a float''s on extra_float_digits, a bytea''s on bytea_output), or may in a function of its own: each database computes the column under its own session''s settings, so the peer could store other text than this database', g.attname, g.rel),
        HINT = 'Write the text into a plain column from the application, or convert with a fixed format (encode(b, ''hex''), a numeric cast), in a function of the application''s too.';
    END IF;
  END LOOP;
  END;
`
}

// appFuncMayConvertSQL is the condition, on pr (a pg_proc row of the application's) and rt (its
// return type's pg_type row), that the function's body could turn an argument into text or
// read a setting, as generatedSettingsSQL reads a function of the application's with an
// argument of a type in settingTypes: a function whose body the shim does not read (a language
// other than sql and plpgsql); one returning a string, a type of no category (json, xml, an
// enum's), a composite or an array, which SELECT $1 or RETURN $1 makes by the argument's output
// function with no word saying so; one returning a date or time type while an argument is
// another such type (date to timestamptz, by TimeZone); one whose body (the text of an SQL-
// standard body as PostgreSQL gives it back) says ||, casts with :: or CAST to a type other
// than a number's or a boolean's, or names a string, json, xml, date or time type (a cast, a
// plpgsql variable), a function that makes text or reads the clock or a setting (to_char,
// format, concat, now, …), one that reads the time zone when an argument is (or holds) a
// timestamptz or timetz (extract, date_trunc, AT TIME ZONE), EXECUTE, or a function or type of
// the application's other than itself (which the shim reads no further). A body that only
// computes, round($1) on a float8, $1 + 1 or extract(year FROM $1) on a date, is not refused
// (TestGeneratedAppFunctionNoTextPasses). The words are read without regard to quoting or
// comments: one in a string or a comment refuses too.
var appFuncMayConvertSQL = `(pr.prolang OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT l.oid FROM pg_catalog.pg_language l
                      WHERE l.lanname OPERATOR(pg_catalog.=) ANY ('{sql,plpgsql}')))
                    OR rt.typcategory OPERATOR(pg_catalog.=) ANY ('{S,U,C,A,X,E,P}')
                    OR rt.typcategory OPERATOR(pg_catalog.=) ANY ('{D,T}') AND EXISTS (SELECT FROM pg_catalog.unnest(pr.proargtypes) pa(oid)
                      JOIN pg_catalog.pg_type pt ON pt.oid OPERATOR(pg_catalog.=) pa.oid
                      WHERE pt.typcategory OPERATOR(pg_catalog.=) ANY ('{D,T}') AND pa.oid OPERATOR(pg_catalog.<>) rt.oid)
                    OR EXISTS (SELECT FROM (SELECT pg_catalog.lower(COALESCE(pg_catalog.pg_get_function_sqlbody(pr.oid), pr.prosrc)) AS src) b
                      WHERE b.src OPERATOR(pg_catalog.~) '\|\||::\s*(?!(numeric|decimal|int|integer|int2|int4|int8|smallint|bigint|float4|float8|real|double\s+precision|bool|boolean)\M)'
                        OR b.src OPERATOR(pg_catalog.~) '\mcast\M' AND b.src OPERATOR(pg_catalog.~) '\mas\s+(?!(numeric|decimal|int|integer|int2|int4|int8|smallint|bigint|float4|float8|real|double\s+precision|bool|boolean)\M)'
                        OR b.src OPERATOR(pg_catalog.~) '\m(text|varchar|char|character|bpchar|name|citext|json|jsonb|xml|date|time|timetz|timestamp|timestamptz|interval|money|to_char|to_json|to_jsonb|row_to_json|array_to_json|json_build_array|json_build_object|jsonb_build_array|jsonb_build_object|format|concat|concat_ws|quote_literal|quote_nullable|string_agg|array_to_string|to_timestamp|to_date|to_number|age|now|current_date|current_time|current_timestamp|localtime|localtimestamp|current_setting|set_config|execute)\M'
                        OR b.src OPERATOR(pg_catalog.~) '\m(zone|timezone|date_trunc|date_part|extract)\M' AND EXISTS (SELECT FROM pg_catalog.unnest(pr.proargtypes) pa(oid)
                          WHERE ` + holdsTypeSQL("pa.oid", `'{1184,1266}'`) + `)
                        OR EXISTS (SELECT FROM pg_catalog.pg_proc p2 WHERE p2.oid OPERATOR(pg_catalog.>=) 16384 AND p2.oid OPERATOR(pg_catalog.<>) pr.oid
                          AND b.src OPERATOR(pg_catalog.~) ('(^|[^a-z0-9_$])' OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(pg_catalog.lower(p2.proname::pg_catalog.text), '\W', '\\\&', 'g') OPERATOR(pg_catalog.||) '($|[^a-z0-9_$])'))
                        OR EXISTS (SELECT FROM pg_catalog.pg_type t2 WHERE t2.oid OPERATOR(pg_catalog.>=) 16384 AND t2.typtype OPERATOR(pg_catalog.<>) 'c'
                          AND b.src OPERATOR(pg_catalog.~) ('(^|[^a-z0-9_$])' OPERATOR(pg_catalog.||) pg_catalog.regexp_replace(pg_catalog.lower(t2.typname::pg_catalog.text), '\W', '\\\&', 'g') OPERATOR(pg_catalog.||) '($|[^a-z0-9_$])'))))`
