package txshim

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// ormSelect is a SELECT as ORMs write it (Django, Rails): every name quoted, every column
// qualified.
func ormSelect(cols int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := 0; i < cols; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"app_model"."col_%d"`, i)
	}
	b.WriteString(` FROM "public"."app_model" WHERE "app_model"."id" = $1`)
	return b.String()
}

// TestLexORMQuotedNames: a SELECT of 127 columns written as ORMs write it ("t"."c", …) held
// more than maxWords quoted names, ManyNames, and was taken for a write (a wrapped, checked
// commit; dual in a dual shim) once any view in the database calls a writing function. Qualifiers
// ("t". or "s".) are not kept among Names (the table or view is named in FROM too) and a name
// repeated past maxWords (GROUP BY the columns selected) is not more.
func TestLexORMQuotedNames(t *testing.T) {
	t.Parallel()
	f := newWriterFuncs(nil, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.cat = &catalogInfo{funcs: map[string]bool{"w": false}, writeViews: map[string]struct{}{"v_w": {}}, notifyRels: map[string]struct{}{}}
	f.tried, f.due = time.Now(), time.Now().Add(time.Hour)
	for _, n := range []int{20, 127, 130, 200} {
		q := ormSelect(n)
		grouped := strings.Replace(q, "SELECT ", "SELECT count(*), ", 1) + " GROUP BY " + strings.SplitN(strings.TrimPrefix(q, "SELECT "), " FROM ", 2)[0]
		for _, q := range []string{q, grouped} {
			st := splitStatements(q)[0]
			f.check(&st)
			if st.Kind != kindRead {
				t.Errorf("ORM SELECT of %d quoted columns: %v (ManyNames %v, %d names), want read", n, st.Kind, st.ManyNames, len(st.Names))
			}
		}
	}
	// Still writes: the view named past the names kept, or qualified.
	var distinct []string
	for i := 0; i < maxWords; i++ {
		distinct = append(distinct, fmt.Sprintf(`"c%d"`, i))
	}
	for _, q := range []string{
		"SELECT " + strings.Join(distinct, ", ") + ` FROM "v_w"`,
		"SELECT " + strings.Join(distinct, ", ") + `, "c1", "c2" FROM "public"."v_w"`,
		`SELECT "v_w"."x" FROM "public"."v_w"`,
		`SELECT "v_w".* FROM "public" . "v_w"`,
		`SELECT x FROM "v_w"`,
	} {
		st := splitStatements(q)[0]
		if f.check(&st); st.Kind != kindWrite {
			t.Errorf("%.60s…: %v, want write", q, st.Kind)
		}
	}
}

func BenchmarkLexORM(b *testing.B) {
	q := ormSelect(40)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		splitStatements(q)
	}
}

func BenchmarkCheckORM(b *testing.B) {
	f := newWriterFuncs(nil, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.cat = &catalogInfo{funcs: map[string]bool{"w": false}, writeViews: map[string]struct{}{"v_w": {}}, notifyRels: map[string]struct{}{}}
	f.tried, f.due = time.Now(), time.Now().Add(time.Hour)
	q := ormSelect(40)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		st := splitStatements(q)[0]
		f.check(&st)
	}
}
