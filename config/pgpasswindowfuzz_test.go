package config

import (
	"slices"
	"testing"
)

// FuzzPgpassWindows: argPgpassLine finds in the windows of pgpassWindows what it finds in all
// of any text (TestPgpassWindows reads generated ones).
func FuzzPgpassWindows(f *testing.F) {
	for _, s := range []string{"db:5432:*:m:s3cret", "a:1:b:c:\\\nx:1:y:z:", "x\\ db:5432:*:m:", "'a:1:b:c:'\"d:*:e:f:\"", "a:%0 5d:b:c:", "a:%-5lu:b:c:", "a:%hhx:b:c:", "printf '%s:%05d:*:m:x\\n' a 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if got, want := findAllIn(argPgpassLine, a, pgpassWindows(a)), argPgpassLine.FindAllStringSubmatchIndex(a, -1); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%q: read in windows %v, all of it %v", a, got, want)
		}
	})
}
