//go:build !race

package consent

// raceEnabled is true in tests built with -race.
const raceEnabled = false
