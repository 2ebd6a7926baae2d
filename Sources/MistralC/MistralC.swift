// C ABI (in progress)
