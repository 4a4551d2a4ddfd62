// Command berth-supervisor is the PID 1 of every sandbox: berth bind-mounts
// it read-only into the container and runs the sandbox's main command under
// it. It reaps orphans and forwards signals, as tini does, and serves
// berth's exec and terminal requests on /.berth/run/sock (see
// supervisor/daemon). It must be built static: CGO_ENABLED=0.
package main

import (
	"os"

	"github.com/berth-dev/berth/supervisor/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:]))
}
