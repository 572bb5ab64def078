module ecopulse.io/bench/controlwebhook

go 1.26
