;; The app exports its `instance-network` import again, unchanged, and the composer plugs
;; that export into library "weather", whose code calls it. wasmtime would run it, serving the
;; library's call with the app's import; capnet refuses it at load: the import reaches both.
(component
    (import "wasi:sockets/network@0.2.12" (instance $n (export "network" (type (sub resource)))))
    (alias export $n "network" (type $network))
    (import "wasi:sockets/instance-network@0.2.12" (instance $inet
        (alias outer 1 $network (type $t))
        (export "network" (type $nw (eq $t)))
        (export "instance-network" (func (result (own $nw))))))
    (import "weather-instance-network" (implements "wasi:sockets/instance-network@0.2.12") (instance $winet
        (alias outer 1 $network (type $t))
        (export "network" (type $nw (eq $t)))
        (export "instance-network" (func (result (own $nw))))))

    ;; The app: given "a", it exports it back as "out"; its "run" the composition exports.
    (component $app
        (import "network" (type $network (sub resource)))
        (import "a" (instance $a
            (alias outer 1 $network (type $t))
            (export "network" (type $nw (eq $t)))
            (export "instance-network" (func (result (own $nw))))))
        (core module $am (func (export "run")))
        (core instance $ai (instantiate $am))
        (func (export "run") (canon lift (core func $ai "run")))
        (export "out" (instance $a)))

    ;; The library: calls the instance-network it is given as "b" and hands the network out
    ;; of "probe".
    (component $lib
        (import "network" (type $network (sub resource)))
        (import "own" (instance $own
            (alias outer 1 $network (type $t))
            (export "network" (type $nw (eq $t)))
            (export "instance-network" (func (result (own $nw))))))
        (import "b" (instance $b
            (alias outer 1 $network (type $t))
            (export "network" (type $nw (eq $t)))
            (export "instance-network" (func (result (own $nw))))))
        (alias export $b "instance-network" (func $f))
        (alias export $b "network" (type $nw))
        (core func $lowered (canon lower (func $f)))
        (core module $m
            (import "b" "f" (func $f (result i32)))
            (func (export "probe") (result i32) call $f))
        (core instance $bag (export "f" (func $lowered)))
        (core instance $i (instantiate $m (with "b" (instance $bag))))
        (alias core export $i "probe" (core func $probe))
        (func (export "probe") (result (own $nw)) (canon lift (core func $probe))))

    (instance $app_i (instantiate $app
        (with "network" (type $network)) (with "a" (instance $inet))))
    (alias export $app_i "out" (instance $out))
    (instance $lib_i (instantiate $lib
        (with "network" (type $network))
        (with "own" (instance $winet))
        (with "b" (instance $out))))
    (alias export $app_i "run" (func $run))
    (export "run" (func $run))
    (alias export $lib_i "probe" (func $probe))
    (export "probe" (func $probe))
)
