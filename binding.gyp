{
  "targets": [
    {
      "target_name": "proclease",
      "sources": ["native/binding.cc", "native/procargs.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "conditions": [
        ["OS=='linux'", { "sources": ["native/linux.cc", "native/lock_posix.cc", "native/signal_origin_posix.cc"] }],
        ["OS=='mac'", {
          "sources": ["native/darwin.cc", "native/lock_posix.cc", "native/signal_origin_posix.cc"],
          "xcode_settings": { "MACOSX_DEPLOYMENT_TARGET": "10.13", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17"] }
        }],
        ["OS!='linux' and OS!='mac'", { "sources": ["native/other.cc"] }]
      ]
    }
  ]
}
