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
