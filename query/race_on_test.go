//go:build race

package query_test

// raceEnabled: the binary was built with -race, which makes the long
// comparison tests take many minutes.
const raceEnabled = true
