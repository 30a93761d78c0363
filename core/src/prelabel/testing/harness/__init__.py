"""The repository's own test harness, not part of the plugin API (it may change without
notice): a backend served as a real process (``backendprocess``), a real Label Studio
(``labelstudio``) and its projects (``lsproject``), Chromium on its labeling page
(``browser``), a Redis server (``redisserver``), a load generator (``loadgen``) and a
recording HTTP host (``httpserver``). A plugin's own tests need only ``prelabel.testing``."""
