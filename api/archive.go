package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/berth-dev/berth/workspace"
)

// setArchiveRetryAfter tells a client refused an archive slot when to try
// again (RFC 9110 Retry-After, in whole seconds).
func setArchiveRetryAfter(w http.ResponseWriter, err error) {
	var busy *workspace.BusyError
	if errors.As(err, &busy) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(busy.RetryAfter.Seconds())))))
	}
}
