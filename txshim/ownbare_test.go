package txshim

import "testing"

// TestOwnObjectBareTandemNoBypass: DDL that changes one of Tandem's objects is refused even
// when the statement also holds a bare tandem (a column, role, trigger or table of that name):
// 3e6b966 let any such statement through.
func TestOwnObjectBareTandemNoBypass(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		`ALTER TABLE tandem.ddl ADD COLUMN tandem int`,
		`ALTER TABLE tandem.ddl ADD tandem int`,
		`DROP TABLE tandem.decisions, tandem`,
		`DROP TABLE tandem, tandem.decisions`,
		`CREATE TRIGGER tandem BEFORE INSERT ON tandem.state FOR EACH ROW EXECUTE FUNCTION f()`,
		`GRANT ALL ON tandem.state TO tandem`,
		`ALTER TABLE tandem.state OWNER TO tandem`,
		`ALTER TABLE tandem.ddl RENAME TO tandem`,
		`CREATE INDEX tandem ON tandem.decisions (at)`,
		`ALTER TABLE tandem ADD FOREIGN KEY (g) REFERENCES tandem.decisions`,
		`ALTER TABLE items ADD COLUMN tandem bigint DEFAULT tandem.f()`,
		`CREATE RULE tandem AS ON INSERT TO tandem.ddl DO INSTEAD NOTHING`,
	} {
		if got := ownRefusalOf(sql); got == "" {
			t.Errorf("%s: not refused", sql)
		}
	}
}
