;; A core module of no WASI: it imports its host's own function.
(module
  (import "env" "print" (func (param i32)))
  (func (export "_start")))
