# cli_deps.cmake - libraries of the samepage command's subcommands, linked to
# the samepage_cli target (included by the top CMakeLists after it exists).
#   libmicrohttpd: `samepage exporter` serves Prometheus metrics over HTTP.
pkg_check_modules(MICROHTTPD REQUIRED IMPORTED_TARGET libmicrohttpd)
target_link_libraries(samepage_cli PRIVATE PkgConfig::MICROHTTPD)
