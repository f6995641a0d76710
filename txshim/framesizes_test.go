package txshim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
	"testing/iotest"
)

// TestFrameReaderSizes: messages around frameChunk and max_message, read whole and in pieces,
// come back whole and in order.
func TestFrameReaderSizes(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 8 << 10, 64<<10 - 1, 64 << 10, frameChunk - 1, frameChunk, frameChunk + 1, 3*frameChunk + 7, 100, 2 * frameChunk, 10, frameChunk}
	var in bytes.Buffer
	for i, n := range sizes {
		in.WriteByte(byte('a' + i))
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(n+4)))
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		in.Write(b)
	}
	for _, one := range []bool{false, true} {
		src := bytes.NewReader(in.Bytes())
		var r *bufio.Reader
		if one {
			r = bufio.NewReader(iotest.HalfReader(src))
		} else {
			r = bufio.NewReader(src)
		}
		f := &frameReader{r: r, max: 3*frameChunk + 7}
		for i, n := range sizes {
			typ, body, err := f.next()
			if err != nil || typ != byte('a'+i) || len(body) != n {
				t.Fatalf("message %d: %c %d %v, want %c %d", i, typ, len(body), err, 'a'+i, n)
			}
			for j := range body {
				if body[j] != byte(i*7+j) {
					t.Fatalf("message %d byte %d wrong", i, j)
				}
			}
		}
		if _, _, err := f.next(); err == nil {
			t.Fatal("no EOF")
		}
	}
}
