// Package deps pins the module's dependencies until the code that uses them lands.
package deps

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/jackc/pglogrepl"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/lib/pq"
	_ "github.com/pires/go-proxyproto"
)
