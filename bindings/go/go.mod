module github.com/nexuslite/nexuslite/bindings/go

go 1.22
