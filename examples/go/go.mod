module github.com/nexuslite/nexuslite/examples/go

go 1.22

require github.com/nexuslite/nexuslite/bindings/go v0.0.0

replace github.com/nexuslite/nexuslite/bindings/go => ../../bindings/go
