package txshim

import "testing"

// TestDrainPartPipelinedSeveral: TestDrainPartPipelinedBlock with several Sync-ended requests
// pipelined before the part (a read, an error, a COMMIT, a COPY): the status it runs in is the
// last one's (coverage only).
func TestDrainPartPipelinedSeveral(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		firsts []string
		block  bool
	}{
		{name: "begin-read", firsts: []string{"BEGIN", "SELECT 1"}, block: true},
		{name: "begin-error", firsts: []string{"BEGIN", "SELECT 1/0"}, block: true},
		{name: "begin-commit", firsts: []string{"BEGIN", "COMMIT"}},
		{name: "read-begin", firsts: []string{"SELECT 1", "BEGIN"}, block: true},
		{name: "begin-copyout", firsts: []string{"BEGIN", "COPY (SELECT 1) TO STDOUT"}, block: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			part := byte('C')
			if tc.name == "begin-error" {
				part = 'E'
			}
			drainPipelinedPart(t, tc.firsts, part, tc.block)
		})
	}
}
