package db

import (
	"crypto/rand"
	"database/sql/driver"
	"encoding/base32"
	"strings"
)

var driverBadConn = driver.ErrBadConn

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 16 random base32 characters (80 bits), e.g.
// "sbx_k3j5...". IDs are lowercase so they are safe in container names.
func NewID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
