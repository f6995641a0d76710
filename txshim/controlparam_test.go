package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestOpenDBCheckIntervalFromDSN: a DSN (or PG* environment) that sets
// client_connection_check_interval itself keeps its value on the control connections, whichever
// way it sets it — as a parameter of a key=value or URL DSN, or in options (-c), which
// PostgreSQL reads before the start-up packet's own parameters; one that sets none gets
// ctlCheckInterval.
func TestOpenDBCheckIntervalFromDSN(t *testing.T) {
	c := pgtest.Start(t)
	kv := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.Port(), pgtest.Superuser, c.Database())
	url := c.DSN(c.Database())
	for _, tc := range []struct {
		name, dsn, env, want string
	}{
		{"key=value, none", kv, "", ctlCheckInterval},
		{"URL, none", url, "", ctlCheckInterval},
		{"key=value parameter", kv + " client_connection_check_interval=5s", "", "5s"},
		{"URL parameter", url + "&client_connection_check_interval=5s", "", "5s"},
		{"key=value options", kv + " options='-c client_connection_check_interval=0'", "", "0"},
		{"URL options", url + "&options=-c%20client_connection_check_interval%3D7s", "", "7s"},
		{"PGOPTIONS", kv, "-c client_connection_check_interval=3s", "3s"},
		{"key=value options, another setting", kv + " options='-c work_mem=8MB'", "", ctlCheckInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("PGOPTIONS", tc.env)
			}
			db, err := OpenDB(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got string
			if err := db.QueryRowContext(ctx, `SHOW client_connection_check_interval`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("client_connection_check_interval = %q, want %q: the value the DSN gives is not kept", got, tc.want)
			}
		})
	}
}

// TestOpenDBOptionsOtherSetting: a DSN whose options set a setting whose name holds one of
// the control connections' (deadlock_timeout holds lock_timeout) was taken for one that sets
// that one, and the control connections kept the database's default for it: a short
// lock_timeout (ALTER DATABASE … SET) stayed on them. Only the setting's own name counts.
func TestOpenDBOptionsOtherSetting(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET lock_timeout = '5ms'`)
	kv := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.Port(), pgtest.Superuser, c.Database())
	for _, tc := range []struct{ options, want string }{
		{"-c deadlock_timeout=2s", "0"},
		{"--deadlock-timeout=2s", "0"},
		{"-cdeadlock_timeout=2s", "0"},
		{"-c lock_timeout=7s", "7s"},
		{"--lock-timeout=8s", "8s"},
		{"-clock_timeout=9s", "9s"},
		{"-c work_mem=8MB -c lock_timeout=6s", "6s"},
	} {
		db, err := OpenDB(kv + " options='" + tc.options + "'")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got string
		err = db.QueryRowContext(ctx, `SHOW lock_timeout`).Scan(&got)
		cancel()
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("options %q: lock_timeout = %q, want %q", tc.options, got, tc.want)
		}
	}
}

// TestOpenDBOptionsEscapedSpace: PostgreSQL splits options at spaces that no backslash escapes,
// and takes a backslash for an escape of the character after it (pg_split_opts): setsParam
// split them at every space and kept the backslashes. A value holding an escaped space, then
// something that reads as an option of its own (application_name=a\ -clock_timeout=1s), was
// taken for options that set lock_timeout, and the database's default for it stayed on the
// control connections; a name with an escaped character (lock\_timeout) was taken for another
// setting, and the control connections' own value overrode the DSN's.
func TestOpenDBOptionsEscapedSpace(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET lock_timeout = '5ms'`)
	kv := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.Port(), pgtest.Superuser, c.Database())
	for _, tc := range []struct{ options, want, app string }{
		// In a quoted key=value value, \\ is one backslash.
		{`-c application_name=a\\ -clock_timeout=1s`, "0", "a -clock_timeout=1s"},
		{`-c application_name=a\\ --lock-timeout=1s`, "0", "a --lock-timeout=1s"},
		{`-c lock\\_timeout=7s`, "7s", ""},
		{`-c application_name=b\\\\ -clock_timeout=3s`, "3s", `b\`},
	} {
		db, err := OpenDB(kv + " options='" + tc.options + "'")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got, app string
		err = db.QueryRowContext(ctx, `SELECT current_setting('lock_timeout'), current_setting('application_name')`).Scan(&got, &app)
		cancel()
		db.Close()
		if err != nil {
			t.Fatalf("options %q: %v", tc.options, err)
		}
		if got != tc.want || app != tc.app {
			t.Errorf("options %q: lock_timeout = %q, application_name = %q; want %q and %q", tc.options, got, app, tc.want, tc.app)
		}
	}
}
