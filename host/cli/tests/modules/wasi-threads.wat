;; A preview 1 module that also spawns threads (wasi-threads) and imports its memory.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi" "thread-spawn" (func (param i32) (result i32)))
  (import "env" "memory" (memory 1))
  (func (export "_start")))
