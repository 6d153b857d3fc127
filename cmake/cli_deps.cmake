# cli_deps.cmake - libraries of the samepage command's subcommands, linked to
# the samepage_cli target (included by the top CMakeLists after it exists).
#   libmicrohttpd: `samepage exporter` serves Prometheus metrics over HTTP.
pkg_check_modules(MICROHTTPD REQUIRED IMPORTED_TARGET libmicrohttpd)
target_link_libraries(samepage_cli PRIVATE PkgConfig::MICROHTTPD)
#   libinih: `samepage estimate --domains` reads samepaged.conf(5) with
#   samepaged's own parser and placement rules (src/daemon/config.c).
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
target_sources(samepage_cli PRIVATE ${CMAKE_SOURCE_DIR}/src/daemon/config.c)
target_link_libraries(samepage_cli PRIVATE PkgConfig::INIH)
