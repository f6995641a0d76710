//go:build !unix

package procgroup

import "os/exec"

// KillOnCancel does nothing where there are no process groups: the end of cmd's context kills
// cmd's process alone (exec's default).
func KillOnCancel(*exec.Cmd) {}
