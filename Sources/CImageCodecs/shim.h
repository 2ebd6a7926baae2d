// System image codecs used by MistralEngine's ImageFile: libpng's simplified png_image API and libjpeg-turbo's
// TurboJPEG API. Both report errors through return codes (they set up their own setjmp internally), so a corrupt
// file never reaches libjpeg's default error_exit, which would call exit().
#include <png.h>
#include <turbojpeg.h>
