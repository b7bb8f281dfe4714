package nexus

/*
#include <stddef.h>
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Log levels passed to a Logger (the Rust `log` crate's levels).
const (
	// LevelError is for errors.
	LevelError = 1
	// LevelWarn is for warnings.
	LevelWarn = 2
	// LevelInfo is for informational records (open, checkpoint, recovery).
	LevelInfo = 3
	// LevelDebug is for debugging detail.
	LevelDebug = 4
	// LevelTrace is for the most verbose tracing.
	LevelTrace = 5
)

// Logger receives the library's log records: level (LevelError..LevelTrace),
// target (the emitting module) and message. It may be called from any
// goroutine or library thread, concurrently, and must not call back into
// this package.
type Logger func(level int, target, message string)

var (
	setLoggerMu sync.Mutex   // serializes SetLogger
	loggerMu    sync.RWMutex // guards logger; never held across a C call
	logger      Logger
)

func swapLogger(fn Logger) Logger {
	loggerMu.Lock()
	defer loggerMu.Unlock()
	old := logger
	logger = fn
	return old
}

// SetLogger installs fn as the process-wide receiver of the library's log
// records up to maxLevel (e.g. LevelInfo); nil removes it. The library never
// logs anywhere by itself.
func SetLogger(fn Logger, maxLevel int) error {
	setLoggerMu.Lock()
	defer setLoggerMu.Unlock()
	if fn == nil {
		if err := capiSetLogCallback(false, maxLevel); err != nil {
			return err
		}
		swapLogger(nil)
		return nil
	}
	old := swapLogger(fn)
	if err := capiSetLogCallback(true, maxLevel); err != nil {
		swapLogger(old)
		return err
	}
	return nil
}

//export goNexusLog
func goNexusLog(level C.int, target, message *C.char, user unsafe.Pointer) {
	loggerMu.RLock()
	fn := logger
	loggerMu.RUnlock()
	if fn == nil {
		return
	}
	t, m := "", ""
	if target != nil {
		t = C.GoString(target)
	}
	if message != nil {
		m = C.GoString(message)
	}
	fn(int(level), t, m)
}
