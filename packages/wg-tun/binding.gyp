{
  "targets": [
    {
      "target_name": "wgtun",
      "conditions": [
        [
          "OS=='linux'",
          {
            "sources": [
              "src/native/addon.c",
              "src/native/io.c",
              "src/native/offload.c",
              "src/native/tun.c",
              "src/native/udp.c"
            ]
          }
        ]
      ],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
