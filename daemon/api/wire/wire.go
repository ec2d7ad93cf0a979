// Package wire holds what the API's server and its clients share on the wire: the error body
// and the framing of exec streams. It imports nothing of the daemon, so that a client links no
// part of the store or the master.
package wire

// Error is the body of an error response.
type Error struct {
	Error string `json:"error"`
}

// Exec frames: a stream byte, a 4-byte big-endian length, the payload.
const (
	StreamStdout byte = 1
	StreamStderr byte = 2
	StreamExit   byte = 3 // payload: the exit code in decimal
	StreamError  byte = 4 // payload: an error message
)
