package procgroup

import (
	"os"
	"strings"
)

// Output keeps the first Max bytes written to it (a command's output, kept for the log) and
// counts the rest in Dropped: a command that prints without end (a `yes`, a `tail -f` by
// mistake) must not fill the sidecar's memory.
type Output struct {
	Max     int
	b       []byte
	Dropped int64
}

func (o *Output) Write(p []byte) (int, error) {
	keep := min(len(p), max(o.Max-len(o.b), 0))
	o.b = append(o.b, p[:keep]...)
	o.Dropped += int64(len(p) - keep)
	return len(p), nil
}

// Masked is what was kept as it is logged, the value of $PGPASSWORD masked (MaskPGPassword).
func (o *Output) Masked() string { return MaskPGPassword(string(o.b), o.Dropped > 0) }

// MaskPGPassword masks the value of $PGPASSWORD in s, a command's output for the log (a hook
// and a health command keep that variable: they may need the database; secrets never appear
// in logs): as it stands and as bash's set -x quotes it (each quote in it closed, escaped and
// opened again). cut: s was cut short, and its last bytes may be the start of the password,
// which go too.
func MaskPGPassword(s string, cut bool) string {
	pw := os.Getenv("PGPASSWORD")
	if pw == "" {
		return s
	}
	forms := []string{pw}
	if q := strings.ReplaceAll(pw, "'", `'\''`); q != pw {
		forms = append(forms, q)
	}
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, "<PGPASSWORD>")
	}
	if cut {
		for _, f := range forms {
			for k := min(len(f)-1, len(s)); k > 0; k-- {
				if strings.HasSuffix(s, f[:k]) {
					s = s[:len(s)-k]
					break
				}
			}
		}
	}
	return s
}
