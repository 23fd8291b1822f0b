"""The simulated Android side: the DTG app (`app`), its rule-based detector (`rules`), the DTG package a simulated
phone installs (`dtg_package`), and the simulated phone speaking ADB (`device`, over its sections `adb_wire`,
`filesystem`, `logcat`, `packages`, `app_manager`, `shell_lexer`, `transport`, `sync`, `shell_commands`,
`android_commands`, `shell`)."""
