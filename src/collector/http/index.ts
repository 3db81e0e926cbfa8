export { startCollectorHttp, type CollectorHttp, type CollectorHttpOptions, type LocalNodeHook } from './server.js';
export { parsePointParam } from './point-param.js';
export { FRAMED_CONTENT_TYPE, readFrames } from './image-stream.js';
export { httpStatusOf } from './error-reply.js';
